<?php
// The PHP side of tests/libraries.rs (issue 30): Debian's php-memcache (pecl
// `memcache`, class Memcache) and php-memcached (class Memcached, over
// libmemcached), the real extensions, write and read back typed values
// (both keep a value's type in its flags). One process per case; commands
// on stdin, one JSON line each:
//
//   write TAG SERVERS   every key, with the list SERVERS   {"written": N}
//   read TAG SERVERS    every key, with the list SERVERS   {"hit", "missing", "wrong", "example"}
//
// argv: FAMILY COUNT KINDS (ascii | utf8 | bytes). FAMILY: pecl-memcache
// (memcache.hash_strategy=consistent, the default), pecl-memcache-fnv (the
// same with memcache.hash_function=fnv), pecl-memcache-standard
// (hash_strategy=standard), php-memcached (a plain new Memcached(): text
// protocol, ASCII keys only) or php-memcached-binary (OPT_BINARY_PROTOCOL,
// which takes any byte).
// SERVERS: comma-separated host:port[:weight] (weights: pecl memcache).
// The keys and values are those of tests/clients/keys.md.

[$_, $family, $count, $kinds] = $argv;
$count = (int)$count;

function test_key(int $i, string $kinds): string {
    if ($kinds !== 'ascii') {
        if ($i % 10 === 3) return "ключ:$i";
        if ($i % 10 === 5) return "日本😀:$i";
        if ($kinds === 'bytes' && $i % 10 === 7) return "\xff\xfe:$i";
    }
    if ($i % 10 === 1) return "{user:$i}:session";
    if ($i % 10 === 9) return "long:$i:" . str_repeat('x', $i % 200);
    return "user:$i@example.com";
}

function test_value(string $tag, int $i) {
    switch ($i % 4) {
        case 0: return "$tag:$i";
        case 1: return $i * 7 + 1;
        case 2: return "$tag:$i:é";
        default: return [$tag, $i];
    }
}

function client(string $family, array $servers) {
    if (str_starts_with($family, 'pecl-memcache')) {
        ini_set('memcache.hash_strategy', $family === 'pecl-memcache-standard' ? 'standard' : 'consistent');
        ini_set('memcache.hash_function', $family === 'pecl-memcache-fnv' ? 'fnv' : 'crc32');
        $c = new Memcache();
        foreach ($servers as $s) {
            $p = explode(':', $s);
            $c->addServer($p[0], (int)$p[1], false, (int)($p[2] ?? 1), 5);
        }
        return [fn($k, $v) => $c->set($k, $v, 0, 0), fn($k) => $c->get($k)];
    }
    $c = new Memcached();
    if ($family === 'php-memcached-binary') {
        $c->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
    }
    foreach ($servers as $s) {
        $p = explode(':', $s);
        $c->addServer($p[0], (int)$p[1]);
    }
    return [fn($k, $v) => $c->set($k, $v), fn($k) => $c->get($k)];
}

while (($line = fgets(STDIN)) !== false) {
    [$command, $tag, $servers] = explode(' ', trim($line));
    [$set, $get] = client($family, explode(',', $servers));
    if ($command === 'write') {
        for ($i = 0; $i < $count; $i++) {
            if (!$set(test_key($i, $kinds), test_value($tag, $i))) {
                fwrite(STDERR, "$family: set " . json_encode(test_key($i, $kinds)) . " failed\n");
                exit(1);
            }
        }
        echo json_encode(['written' => $count]), "\n";
    } elseif ($command === 'read') {
        $hit = $missing = $wrong = 0;
        $example = null;
        for ($i = 0; $i < $count; $i++) {
            $got = $get(test_key($i, $kinds));
            if ($got === false) {
                $missing++;
                $example ??= 'missing ' . bin2hex(test_key($i, $kinds));
            } elseif ($got !== test_value($tag, $i)) {
                $wrong++;
                $example ??= bin2hex(test_key($i, $kinds)) . ': ' . var_export($got, true);
            } else {
                $hit++;
            }
        }
        echo json_encode(['hit' => $hit, 'missing' => $missing, 'wrong' => $wrong, 'example' => $example]), "\n";
    } else {
        fwrite(STDERR, "unknown command $command\n");
        exit(1);
    }
}
