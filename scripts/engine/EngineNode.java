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
 *   Plugins from a plugin zip whose jars are on the classpath (engine.sh: the k-NN plugin):
 *     -Dengine.plugin.descriptors=/path/to/plugin-descriptor.properties,...
 *   Each is loaded as a classpath plugin too (its "classname"); it is listed in
 *   GET _cat/plugins under its descriptor's name and version (not its class name), and if it
 *   extends lang-painless, its Painless allowlist extensions are loaded.
 */
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Properties;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.Version;
import org.opensearch.action.admin.cluster.node.info.PluginsAndModules;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.ExtensiblePlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.PluginInfo;
import org.opensearch.plugins.PluginsService;

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

        /**
         * Lists the described plugins under their descriptor's name and version. A classpath
         * plugin's PluginInfo is named after its class and PluginsService has no hook for
         * that, so its (private, final) info field is replaced. On failure the plugin still
         * works and is listed under its class name.
         */
        void nameDescribedPlugins(final List<DescribedPlugin> described) {
            if (described.isEmpty()) {
                return;
            }
            try {
                final PluginsService service = getPluginsService();
                final PluginsAndModules info = service.info();
                final List<PluginInfo> plugins = new ArrayList<>();
                for (final PluginInfo plugin : info.getPluginInfos()) {
                    PluginInfo named = plugin;
                    for (final DescribedPlugin d : described) {
                        if (d.type.getName().equals(plugin.getClassname())) {
                            named = d.info();
                        }
                    }
                    plugins.add(named);
                }
                final Field field = PluginsService.class.getDeclaredField("info");
                field.setAccessible(true);
                field.set(service, new PluginsAndModules(plugins, info.getModuleInfos()));
            } catch (final ReflectiveOperationException | RuntimeException e) {
                System.err.println("engine: warning: plugins keep their class names in _cat/plugins: " + e);
            }
        }
    }

    /** A plugin given by -Dengine.plugin.descriptors (a plugin zip's plugin-descriptor.properties). */
    private static final class DescribedPlugin {
        final Properties props;
        final Class<? extends Plugin> type;

        DescribedPlugin(final Path descriptor) throws IOException, ClassNotFoundException {
            props = new Properties();
            try (InputStream in = Files.newInputStream(descriptor)) {
                props.load(in);
            }
            final String classname = props.getProperty("classname", "").trim();
            if (classname.isEmpty()) {
                throw new IOException("no classname in " + descriptor);
            }
            type = Class.forName(classname).asSubclass(Plugin.class);
        }

        String get(final String key, final String fallback) {
            final String value = props.getProperty(key, "").trim();
            return value.isEmpty() ? fallback : value;
        }

        List<String> extendedPlugins() {
            return Arrays.stream(get("extended.plugins", "").split(","))
                .map(String::trim).filter(s -> !s.isEmpty()).toList();
        }

        PluginInfo info() {
            return new PluginInfo(get("name", type.getName()), get("description", "classpath plugin"),
                get("version", "NA"), Version.CURRENT, get("java.version", "1.8"), type.getName(),
                null, extendedPlugins(), false);
        }
    }

    private EngineNode() {}

    private static List<DescribedPlugin> loadDescribedPlugins() throws IOException, ClassNotFoundException {
        final List<DescribedPlugin> described = new ArrayList<>();
        for (final String path : System.getProperty("engine.plugin.descriptors", "").split(",")) {
            if (!path.trim().isEmpty()) {
                described.add(new DescribedPlugin(Paths.get(path.trim())));
            }
        }
        return described;
    }

    private static URL location(final Class<?> type) {
        final CodeSource source = type.getProtectionDomain().getCodeSource();
        return source == null ? null : source.getLocation();
    }

    /**
     * The stock PluginsService hands lang-painless the PainlessExtensions of the plugins that
     * extend it; classpath plugins extend nothing, so that is done here, before the node (and
     * its Painless script engine) is built: PainlessPlugin keeps its allowlists in a static map.
     * Only the extensions in a described plugin's own jar are loaded.
     */
    private static void loadPainlessExtensions(final List<DescribedPlugin> described) {
        final List<URL> jars = new ArrayList<>();
        for (final DescribedPlugin d : described) {
            if (d.extendedPlugins().contains("lang-painless")) {
                jars.add(location(d.type));
            }
        }
        if (jars.isEmpty()) {
            return;
        }
        new PainlessPlugin().loadExtensions(new ExtensiblePlugin.ExtensionLoader() {
            @Override
            public <T> List<T> loadExtensions(final Class<T> extensionPointType) {
                final List<T> extensions = new ArrayList<>();
                for (final ServiceLoader.Provider<T> provider :
                        ServiceLoader.load(extensionPointType, EngineNode.class.getClassLoader()).stream().toList()) {
                    final URL jar = location(provider.type());
                    if (jars.stream().anyMatch(j -> Objects.equals(j, jar))) {
                        extensions.add(provider.get());
                    }
                }
                return extensions;
            }
        });
    }

    private static List<Class<? extends Plugin>> loadPlugins(final List<DescribedPlugin> described)
            throws ClassNotFoundException {
        // A set: a plugin named twice (say, also in engine.extra.plugins) is loaded once.
        final Set<String> names = new LinkedHashSet<>(List.of(MODULES));
        for (final DescribedPlugin d : described) {
            names.add(d.type.getName());
        }
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

            final List<DescribedPlugin> described = loadDescribedPlugins();
            loadPainlessExtensions(described);
            final ClasspathPluginNode node = new ClasspathPluginNode(env, loadPlugins(described));
            node.nameDescribedPlugins(described);
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
