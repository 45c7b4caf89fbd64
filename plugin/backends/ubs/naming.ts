// The SDK name of a Kubernetes share. The SDK allows 1 to 47 characters of [A-Za-z0-9.:_-] and
// the name must be unique across the whole UB memory pool (every node, every cluster using it).
//
// Scheme, deterministic on every node: "<prefix>.<namespace>.<share>" when that fits in 47
// characters; otherwise "<prefix>.<start of namespace.share>:<hash>", the hash being 16 base-32
// characters (80 bits) of SHA-256 over "<namespace>/<share>". Collision-free: DNS labels hold no
// "." or ":", so a short name maps back to exactly one namespace and share, a hashed name (the only
// kind with ":") never equals a short one, and two hashed names collide only if SHA-256 does.
// The prefix (config backend.namePrefix, default "nms") keeps clusters sharing one pool apart.
//
// With a cluster secret (config backend.nameSecretFile, the same file on every node) every name is
// the hashed kind and the hash is HMAC-SHA-256 keyed with the secret: still stable across restarts
// and identical on every node, but no one without the secret can tell a share's name in advance,
// so no other pool client can allocate it first (squat it). Without one, names are predictable.
import type * as Crypto from 'node:crypto';
import { statSync } from 'node:fs';
import { readRegularFileSync } from '../../files/regular-file';

export const SDK_NAME_MAX = 47;
export const SDK_NAME_RE = /^[A-Za-z0-9.:_-]{1,47}$/;
const HASH_CHARS = 16;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** Bytes a name secret must have at least (128 bits) and at most. */
export const NAME_SECRET_MIN_BYTES = 16;
const NAME_SECRET_MAX_BYTES = 4096;

/**
 * The cluster's name secret from `path`: a regular file owned by root and closed to everyone else
 * (it is what keeps names unpredictable), of 16 to 4096 bytes. Throws naming the file and the reason.
 */
export function readNameSecret(path: string): Buffer {
  const st = statSync(path);
  if (st.isFile() && st.uid !== 0) throw new Error(`${path}: must be owned by root (uid 0), is owned by uid ${st.uid}`);
  if (st.isFile() && st.mode & 0o077) throw new Error(`${path}: must be readable by root only (mode 0600 or 0400), has mode 0${(st.mode & 0o777).toString(8)}`);
  const secret = readRegularFileSync(path, NAME_SECRET_MAX_BYTES);
  if (secret.length < NAME_SECRET_MIN_BYTES) throw new Error(`${path}: must hold at least ${NAME_SECRET_MIN_BYTES} bytes (e.g. head -c 32 /dev/urandom), has ${secret.length}`);
  return secret;
}

export function sdkNameOf(prefix: string, namespace: string, name: string, secret?: Buffer): string {
  const plain = `${prefix}.${namespace}.${name}`;
  if (plain.length <= SDK_NAME_MAX && !secret) return plain;
  // loaded here: node:crypto costs start-up on every node, and only long names need it
  const { createHash, createHmac } = require('node:crypto') as typeof Crypto;
  const digest = (secret ? createHmac('sha256', secret) : createHash('sha256')).update(`${namespace}/${name}`).digest();
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
