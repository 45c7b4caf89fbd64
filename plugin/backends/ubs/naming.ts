// The SDK name of a Kubernetes share. The SDK allows 1 to 47 characters of [A-Za-z0-9.:_-] and
// the name must be unique across the whole UB memory pool (every node, every cluster using it).
//
// Scheme, deterministic on every node: "<prefix>.<namespace>.<share>" when that fits in 47
// characters; otherwise "<prefix>.<start of namespace.share>:<hash>", the hash being 16 base-32
// characters (80 bits) of SHA-256 over "<namespace>/<share>". Collision-free: DNS labels hold no
// "." or ":", so a short name maps back to exactly one namespace and share, a hashed name (the only
// kind with ":") never equals a short one, and two hashed names collide only if SHA-256 does.
// The prefix (config backend.namePrefix, default "nms") keeps clusters sharing one pool apart.
import type * as Crypto from 'node:crypto';

export const SDK_NAME_MAX = 47;
export const SDK_NAME_RE = /^[A-Za-z0-9.:_-]{1,47}$/;
const HASH_CHARS = 16;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export function sdkNameOf(prefix: string, namespace: string, name: string): string {
  const plain = `${prefix}.${namespace}.${name}`;
  if (plain.length <= SDK_NAME_MAX) return plain;
  // loaded here: node:crypto costs start-up on every node, and only long names need it
  const { createHash } = require('node:crypto') as typeof Crypto;
  const digest = createHash('sha256').update(`${namespace}/${name}`).digest();
  let hash = '';
  for (let i = 0; hash.length < HASH_CHARS; i++) {
    // 5 bits at a time from the digest's bit string
    const bit = i * 5;
    const word = (digest[bit >> 3] << 8) | digest[(bit >> 3) + 1];
    hash += BASE32[(word >> (11 - (bit & 7))) & 31];
  }
  const room = SDK_NAME_MAX - prefix.length - 2 - HASH_CHARS;
  return `${prefix}.${`${namespace}.${name}`.slice(0, room)}:${hash}`;
}

/** Why `prefix` cannot start SDK names, or undefined. */
export function namePrefixProblem(prefix: string): string | undefined {
  if (!/^[A-Za-z0-9_-]{1,12}$/.test(prefix)) return 'must be 1 to 12 characters of letters, digits, "_" and "-"';
  return undefined;
}
