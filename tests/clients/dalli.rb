# The Ruby side of tests/libraries.rs (issue 30): Debian's ruby-dalli, the
# real Dalli::Client, writes and reads back typed values (Dalli marshals
# them and says so in the flags). One process per case; commands on
# stdin, one JSON line each:
#
#   write TAG SERVERS   every key, with the list SERVERS   {"written": N}
#   read TAG SERVERS    every key, with the list SERVERS   {"hit", "missing", "wrong", "example"}
#
# argv: COUNT KINDS (ascii | utf8 | bytes) [NAMESPACE] (as stored: "app:" is
# Dalli's namespace: "app")
# SERVERS: comma-separated host:port[:weight], as Dalli takes them.
# The keys and values are those of tests/clients/keys.md.
require "dalli"
require "json"
require "logger"

count = Integer(ARGV[0])
kinds = ARGV[1]
namespace = ARGV[2]
Dalli.logger = Logger.new(nil)

def key(i, kinds)
  if kinds != "ascii"
    return "ключ:#{i}" if i % 10 == 3
    return "日本😀:#{i}" if i % 10 == 5
    return "\xff\xfe:#{i}".b if kinds == "bytes" && i % 10 == 7
  end
  return "{user:#{i}}:session" if i % 10 == 1
  return "long:#{i}:" + "x" * (i % 200) if i % 10 == 9
  "user:#{i}@example.com"
end

def value(tag, i)
  case i % 4
  when 0 then "#{tag}:#{i}"
  when 1 then i * 7 + 1
  when 2 then "#{tag}:#{i}:é"
  else [tag, i]
  end
end

$stdout.sync = true
$stdin.each_line do |line|
  command, tag, servers = line.split
  options = { socket_timeout: 5, down_retry_delay: 60 }
  options[:namespace] = namespace.chomp(":") if namespace
  client = Dalli::Client.new(servers.split(","), options)
  case command
  when "write"
    count.times { |i| client.set(key(i, kinds), value(tag, i)) or abort("set #{key(i, kinds).inspect} failed") }
    puts JSON.generate(written: count)
  when "read"
    hit = missing = wrong = 0
    example = nil
    count.times do |i|
      got = client.get(key(i, kinds))
      want = value(tag, i)
      if got.nil?
        missing += 1
        example ||= "missing #{key(i, kinds).inspect}"
      elsif got != want || got.class != want.class
        wrong += 1
        example ||= "#{key(i, kinds).inspect}: #{got.inspect}"
      else
        hit += 1
      end
    end
    puts JSON.generate(hit: hit, missing: missing, wrong: wrong, example: example)
  else
    abort "unknown command #{command}"
  end
  client.close
end
