/*
 * One OpenSearch node per JVM, for local tests (scripts/engine.sh).
 *
 * The stock distribution's bootstrap (root refusal, bootstrap checks, security manager,
 * plugin directories) is skipped: the server jar and its modules are plain classpath
 * entries (fetched from Maven Central) and the module plugins are handed to the node as
 * classpath plugins, the same way OpenSearch's own test framework does it.
 *
 * Usage: java -cp 'lib/*:classes' EngineNode <node-home>
 *   <node-home>/config/opensearch.yml and log4j2.properties must exist.
 *   Extra plugin classes: -Dengine.extra.plugins=com.example.FooPlugin,...
 */
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

public final class EngineNode {

    /** The modules of the stock distribution that tests rely on. */
    private static final String[] MODULES = {
        "org.opensearch.transport.Netty4Plugin",
        "org.opensearch.index.reindex.ReindexPlugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.script.mustache.MustachePlugin",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.join.ParentJoinPlugin",
        "org.opensearch.percolator.PercolatorPlugin",
        "org.opensearch.index.rankeval.RankEvalPlugin",
        "org.opensearch.search.aggregations.matrix.MatrixAggregationPlugin",
        "org.opensearch.ingest.common.IngestCommonPlugin",
    };

    private static final class ClasspathPluginNode extends Node {
        ClasspathPluginNode(final Environment env, final Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    private EngineNode() {}

    private static List<Class<? extends Plugin>> loadPlugins() throws ClassNotFoundException {
        final List<String> names = new ArrayList<>(List.of(MODULES));
        final String extra = System.getProperty("engine.extra.plugins", "").trim();
        if (!extra.isEmpty()) {
            for (final String name : extra.split(",")) {
                if (!name.trim().isEmpty()) {
                    names.add(name.trim());
                }
            }
        }
        final List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (final String name : names) {
            plugins.add(Class.forName(name).asSubclass(Plugin.class));
        }
        return plugins;
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
            Files.createDirectories(env.modulesFile());
            Files.createDirectories(env.pluginsFile());

            final Node node = new ClasspathPluginNode(env, loadPlugins());
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
