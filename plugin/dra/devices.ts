// How a declared share is named as a DRA device. The ResourceSlice publisher names devices with it
// and the driver finds the share of an allocated device with it, so both sides agree by construction.
import type * as Crypto from 'node:crypto';
import { shareKey } from '../model';

/** The driver name the agent registers and publishes under unless configured otherwise. */
export const DEFAULT_DRIVER_NAME = 'memshare.nri.io';

/**
 * The device name of share `namespace/name`: its name (a DNS label of at most 47 characters)
 * and 8 hex digits of the SHA-256 of "namespace/name", so at most 56 characters (the API's limit
 * is a 63-character DNS label) and distinct for two namespaces' shares of one name.
 */
export function deviceNameOf(namespace: string, name: string): string {
  // loaded here, not at import: the config imports this module, and an NRI-only agent never needs crypto
  const { createHash } = require('node:crypto') as typeof Crypto;
  const digest = createHash('sha256').update(shareKey(namespace, name)).digest('hex').slice(0, 8);
  return `${name}-${digest}`;
}
