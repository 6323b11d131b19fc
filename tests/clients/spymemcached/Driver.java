// The Java side of tests/libraries.rs (issue 30): Debian's
// libspymemcached-java, the real MemcachedClient, writes and reads back
// typed values (its SerializingTranscoder keeps a value's type in the
// flags). One process per case; commands on stdin, one JSON line each:
//
//   write TAG SERVERS   every key, with the list SERVERS   {"written": N}
//   read TAG SERVERS    every key, with the list SERVERS   {"hit", "missing", "wrong", "example"}
//
// argv: FAMILY COUNT KINDS (ascii | utf8). FAMILY: spymemcached (new
// MemcachedClient(addrs)), spymemcached-ketama (new
// KetamaConnectionFactory(), or its weight map when SERVERS have weights)
// or spymemcached-consistent (ConnectionFactoryBuilder, locator CONSISTENT,
// its default hash).
// SERVERS: comma-separated host:port[:weight].
// The keys and values are those of tests/clients/keys.md.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import net.spy.memcached.ConnectionFactory;
import net.spy.memcached.ConnectionFactoryBuilder;
import net.spy.memcached.DefaultConnectionFactory;
import net.spy.memcached.DefaultHashAlgorithm;
import net.spy.memcached.KetamaConnectionFactory;
import net.spy.memcached.KetamaNodeKeyFormatter;
import net.spy.memcached.MemcachedClient;

public final class Driver {
    static String key(int i, String kinds) {
        if (!kinds.equals("ascii")) {
            if (i % 10 == 3) return "ключ:" + i;
            if (i % 10 == 5) return "日本😀:" + i;
        }
        if (i % 10 == 1) return "{user:" + i + "}:session";
        if (i % 10 == 9) return "long:" + i + ":" + "x".repeat(i % 200);
        return "user:" + i + "@example.com";
    }

    static Object value(String tag, int i) {
        switch (i % 4) {
            case 0: return tag + ":" + i;
            case 1: return i * 7 + 1;
            case 2: return tag + ":" + i + ":é";
            default: return new ArrayList<Object>(Arrays.asList(tag, i));
        }
    }

    static String json(String text) {
        if (text == null) return "null";
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') out.append('\\').append(c);
            else if (c < 0x20 || c > 0x7e) out.append(String.format("\\u%04x", (int) c));
            else out.append(c);
        }
        return out.append('"').toString();
    }

    static MemcachedClient client(String family, String servers) throws Exception {
        List<InetSocketAddress> addrs = new ArrayList<>();
        Map<InetSocketAddress, Integer> weights = new LinkedHashMap<>();
        for (String s : servers.split(",")) {
            String[] p = s.split(":");
            InetSocketAddress a = new InetSocketAddress(p[0], Integer.parseInt(p[1]));
            addrs.add(a);
            if (p.length == 3) weights.put(a, Integer.parseInt(p[2]));
        }
        ConnectionFactory factory;
        switch (family) {
            case "spymemcached":
                factory = new DefaultConnectionFactory();
                break;
            case "spymemcached-ketama":
                factory = weights.isEmpty()
                    ? new KetamaConnectionFactory()
                    : new KetamaConnectionFactory(DefaultConnectionFactory.DEFAULT_OP_QUEUE_LEN,
                        DefaultConnectionFactory.DEFAULT_READ_BUFFER_SIZE,
                        DefaultConnectionFactory.DEFAULT_OP_QUEUE_MAX_BLOCK_TIME,
                        DefaultHashAlgorithm.KETAMA_HASH, KetamaNodeKeyFormatter.Format.SPYMEMCACHED, weights);
                break;
            case "spymemcached-consistent":
                factory = new ConnectionFactoryBuilder().setLocatorType(ConnectionFactoryBuilder.Locator.CONSISTENT).build();
                break;
            default:
                throw new IllegalArgumentException("unknown family " + family);
        }
        MemcachedClient c = new MemcachedClient(factory, addrs);
        // The default failure mode (Redistribute) sends a key whose server
        // is not connected yet to the next one: the first keys written
        // right after the client starts could land elsewhere.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!c.getUnavailableServers().isEmpty()) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("not connected within 10 s: " + c.getUnavailableServers());
            }
            Thread.sleep(5);
        }
        return c;
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("net.spy.log.LoggerImpl", "net.spy.memcached.compat.log.SunLogger");
        java.util.logging.Logger.getLogger("net.spy.memcached").setLevel(java.util.logging.Level.OFF);
        String family = args[0];
        int count = Integer.parseInt(args[1]);
        String kinds = args[2];
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] words = line.trim().split(" ");
            String command = words[0], tag = words[1];
            MemcachedClient c = client(family, words[2]);
            try {
                if (command.equals("write")) {
                    for (int i = 0; i < count; i++) {
                        if (!c.set(key(i, kinds), 0, value(tag, i)).get(10, TimeUnit.SECONDS)) {
                            throw new IllegalStateException("set " + key(i, kinds) + " failed");
                        }
                    }
                    System.out.println("{\"written\":" + count + "}");
                } else if (command.equals("read")) {
                    int hit = 0, missing = 0, wrong = 0;
                    String example = null;
                    for (int i = 0; i < count; i++) {
                        Object got = c.get(key(i, kinds));
                        Object want = value(tag, i);
                        if (got == null) {
                            missing++;
                            if (example == null) example = "missing " + key(i, kinds);
                        } else if (!got.equals(want) || got.getClass() != want.getClass()) {
                            wrong++;
                            if (example == null) example = key(i, kinds) + ": " + got;
                        } else {
                            hit++;
                        }
                    }
                    System.out.println("{\"hit\":" + hit + ",\"missing\":" + missing + ",\"wrong\":" + wrong
                        + ",\"example\":" + json(example) + "}");
                } else {
                    throw new IllegalArgumentException("unknown command " + command);
                }
                System.out.flush();
            } finally {
                c.shutdown(5, TimeUnit.SECONDS);
            }
        }
    }
}
