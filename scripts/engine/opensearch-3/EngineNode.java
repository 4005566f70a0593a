/*
 * One OpenSearch 3.x node per JVM, for local tests (scripts/engine.sh with
 * REINDEX_FSM_ENGINE_KIND=opensearch-3); the 2.x launcher is ../EngineNode.java.
 *
 * As in 2.x, the stock bootstrap (root refusal, bootstrap checks, the Java agent that replaces
 * the security manager, plugin directories) is skipped: the server jar and its modules are
 * plain classpath entries (fetched from Maven Central) handed to the node as classpath
 * plugins. OpenSearch 3 takes a classpath plugin as a PluginInfo, so each module is listed in
 * GET _cat/plugins under its stock name (lang-painless, reindex, ...), and a described plugin
 * that extends another (its descriptor's extended.plugins) gets its extensions loaded by
 * PluginsService itself.
 *
 * Usage: java -cp 'lib/*:classes' EngineNode <node-home>
 *   <node-home>/config/opensearch.yml and log4j2.properties must exist.
 *   Extra plugin classes: -Dengine.extra.plugins=com.example.FooPlugin,...
 *   Plugins from a plugin zip whose jars are on the classpath, listed under their
 *   descriptor's name: -Dengine.plugin.descriptors=/path/to/plugin-descriptor.properties,...
 */
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.Version;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.PluginInfo;

public final class EngineNode {

    /** The modules of the stock distribution that tests rely on: stock name, plugin class. */
    private static final String[][] MODULES = {
        {"transport-netty4", "org.opensearch.transport.Netty4ModulePlugin"},
        {"reindex", "org.opensearch.index.reindex.ReindexModulePlugin"},
        {"lang-painless", "org.opensearch.painless.PainlessModulePlugin"},
        {"lang-mustache", "org.opensearch.script.mustache.MustacheModulePlugin"},
        {"analysis-common", "org.opensearch.analysis.common.CommonAnalysisModulePlugin"},
        {"mapper-extras", "org.opensearch.index.mapper.MapperExtrasModulePlugin"},
        {"parent-join", "org.opensearch.join.ParentJoinModulePlugin"},
        {"percolator", "org.opensearch.percolator.PercolatorModulePlugin"},
        {"rank-eval", "org.opensearch.index.rankeval.RankEvalModulePlugin"},
        {"aggs-matrix-stats", "org.opensearch.search.aggregations.matrix.MatrixAggregationModulePlugin"},
        {"ingest-common", "org.opensearch.ingest.common.IngestCommonModulePlugin"},
    };

    private static final class ClasspathPluginNode extends Node {
        ClasspathPluginNode(final Environment env, final Collection<PluginInfo> plugins) {
            super(env, plugins, true);
        }
    }

    private EngineNode() {}

    private static PluginInfo classpathPlugin(final String name, final String classname) {
        return new PluginInfo(name, "classpath plugin", "NA", Version.CURRENT, "21", classname,
            null, Collections.emptyList(), false);
    }

    /** The modules, the described plugins (under their descriptors' names) and the extra
     * plugin classes; a plugin class given twice is loaded once. */
    private static List<PluginInfo> plugins() throws Exception {
        final Map<String, PluginInfo> byClass = new LinkedHashMap<>();
        for (final String[] module : MODULES) {
            byClass.put(module[1], classpathPlugin(module[0], module[1]));
        }
        for (final String path : System.getProperty("engine.plugin.descriptors", "").split(",")) {
            if (!path.trim().isEmpty()) {
                // readFromProperties takes the plugin's directory and checks its descriptor.
                final PluginInfo info = PluginInfo.readFromProperties(Paths.get(path.trim()).getParent());
                byClass.put(info.getClassname(), info);
            }
        }
        for (final String name : System.getProperty("engine.extra.plugins", "").split(",")) {
            if (!name.trim().isEmpty()) {
                byClass.putIfAbsent(name.trim(), classpathPlugin(name.trim(), name.trim()));
            }
        }
        for (final String classname : byClass.keySet()) {
            Class.forName(classname); // fail at once on a missing class, not with a log line
        }
        return new ArrayList<>(byClass.values());
    }

    public static void main(final String[] args) {
        if (args.length != 1) {
            System.err.println("usage: EngineNode <node-home>");
            System.exit(2);
        }
        try {
            final Path home = Paths.get(args[0]).toAbsolutePath().normalize();
            final Path config = home.resolve("config");
            final Settings input = Settings.builder().put("path.home", home.toString()).build();
            final Environment env = InternalSettingsPreparer.prepareEnvironment(
                input, Collections.emptyMap(), config, () -> home.getFileName().toString());
            LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
            LogConfigurator.registerErrorListener();
            LogConfigurator.configure(env);
            Files.createDirectories(env.modulesDir());
            Files.createDirectories(env.pluginsDir());

            final ClasspathPluginNode node = new ClasspathPluginNode(env, plugins());
            final CountDownLatch stopped = new CountDownLatch(1);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                try {
                    node.close();
                    node.awaitClose(30, TimeUnit.SECONDS);
                } catch (final Exception e) {
                    e.printStackTrace();
                } finally {
                    stopped.countDown();
                }
            }, "engine-shutdown"));

            // Keep-alive thread, like the stock Bootstrap: the node's own threads are daemons.
            final Thread keepAlive = new Thread(() -> {
                try {
                    stopped.await();
                } catch (final InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "engine-keepalive");
            keepAlive.setDaemon(false);
            keepAlive.start();

            node.start();
            System.out.println("ENGINE NODE STARTED " + env.settings().get("node.name"));
        } catch (final Throwable t) {
            System.err.println("ENGINE NODE FAILED TO START: " + t);
            t.printStackTrace();
            System.exit(1);
        }
    }
}
