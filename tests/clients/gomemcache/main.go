// The Go side of tests/libraries.rs (issue 30): Debian's
// golang-github-bradfitz-gomemcache-dev, the real memcache.Client, writes
// and reads back values and their flags (gomemcache has no types of its
// own: Item.Flags is the application's). One process per case; commands
// on stdin, one JSON line each:
//
//	write TAG SERVERS   every key, with the list SERVERS   {"written": N}
//	read TAG SERVERS    every key, with the list SERVERS   {"hit", "missing", "wrong", "example"}
//
// argv: COUNT KINDS (ascii: Debian's gomemcache refuses any key byte above
// 0x7e). SERVERS: comma-separated host:port, a server listed twice taking
// two slots. The keys are those of tests/clients/keys.md; a value is
// "TAG:i" (with "é" when i % 4 == 2) and its flags are i.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

func key(i int, kinds string) string {
	if kinds != "ascii" {
		if i%10 == 3 {
			return fmt.Sprintf("ключ:%d", i)
		}
		if i%10 == 5 {
			return fmt.Sprintf("日本😀:%d", i)
		}
	}
	if i%10 == 1 {
		return fmt.Sprintf("{user:%d}:session", i)
	}
	if i%10 == 9 {
		return fmt.Sprintf("long:%d:", i) + strings.Repeat("x", i%200)
	}
	return fmt.Sprintf("user:%d@example.com", i)
}

func value(tag string, i int) []byte {
	if i%4 == 2 {
		return []byte(fmt.Sprintf("%s:%d:é", tag, i))
	}
	return []byte(fmt.Sprintf("%s:%d", tag, i))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "gomemcache: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	count, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fail("count: %v", err)
	}
	kinds := os.Args[2]
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		words := strings.Fields(in.Text())
		if len(words) != 3 {
			fail("not a command: %q", in.Text())
		}
		command, tag := words[0], words[1]
		c := memcache.New(strings.Split(words[2], ",")...)
		c.Timeout = 5 * time.Second
		switch command {
		case "write":
			for i := 0; i < count; i++ {
				item := &memcache.Item{Key: key(i, kinds), Value: value(tag, i), Flags: uint32(i)}
				if err := c.Set(item); err != nil {
					fail("set %q: %v", item.Key, err)
				}
			}
			out.Encode(map[string]int{"written": count})
		case "read":
			hit, missing, wrong, example := 0, 0, 0, ""
			for i := 0; i < count; i++ {
				item, err := c.Get(key(i, kinds))
				switch {
				case err == memcache.ErrCacheMiss:
					missing++
					if example == "" {
						example = "missing " + key(i, kinds)
					}
				case err != nil:
					fail("get %q: %v", key(i, kinds), err)
				case string(item.Value) != string(value(tag, i)) || item.Flags != uint32(i):
					wrong++
					if example == "" {
						example = fmt.Sprintf("%s: %q flags %d", key(i, kinds), item.Value, item.Flags)
					}
				default:
					hit++
				}
			}
			out.Encode(map[string]interface{}{"hit": hit, "missing": missing, "wrong": wrong, "example": example})
		default:
			fail("unknown command %q", command)
		}
	}
}
