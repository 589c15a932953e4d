import ipaddr from 'ipaddr.js';

/**
 * The per-ip rate-limit bucket of a client address. An IPv4 address (an IPv4-mapped IPv6 one included) is
 * its own bucket; an IPv6 address counts in its /`prefixBits` (ROTOR_RATE_LIMITS ipv6Prefix, 56 unless
 * set). A subscriber is handed a /56 or a /48 and may use any address in it, so buckets per address would
 * give one client 2^72 of them. And one address has many
 * spellings (letter case, zeros, `::`, `::ffff:` for IPv4), all the same bucket: the key is parsed,
 * never the text as written (a trusted proxy's X-Forwarded-For is written by whatever proxy it is).
 */
export function rateBucketOf(ip: string, prefixBits: number): string {
  // Parsed once per address text and width: parsing showed as ~1% of a refresh's event-loop time.
  if (ip.length > LONGEST_ADDRESS) return UNPARSED;
  const key = `${prefixBits} ${ip}`;
  let bucket = buckets.get(key);
  if (bucket === undefined) {
    bucket = parsedBucketOf(ip, prefixBits);
    if (buckets.size >= BUCKETS_CACHED) buckets.clear();
    buckets.set(key, bucket);
  }
  return bucket;
}
const buckets = new Map<string, string>();
const BUCKETS_CACHED = 4096;
/** No IPv6 address is longer as text (an IPv4-mapped one written in full: 45 characters). */
const LONGEST_ADDRESS = 45;
const UNPARSED = 'not-an-address';

function parsedBucketOf(ip: string, prefixBits: number): string {
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = ipaddr.process(ip);
  } catch {
    // Not an address: an X-Forwarded-For entry a hop-count proxy setting passed on as written. All such
    // text is one bucket, so that no spelling of junk is a fresh one (nor a cache entry of its size).
    return UNPARSED;
  }
  if (address.kind() === 'ipv4') return address.toString();
  const parts = (address as ipaddr.IPv6).parts.map((part, i) => {
    const kept = Math.min(16, Math.max(0, prefixBits - 16 * i));
    return kept === 0 ? 0 : part & (0xffff << (16 - kept)) & 0xffff;
  });
  return `${new ipaddr.IPv6(parts).toString()}/${prefixBits}`;
}
