// Default locations on the host; the config can change every one of them.

export const DEFAULT_CONFIG_PATH = '/etc/nri-memshare/config.json';
export const DEFAULT_STATE_DIR = '/var/lib/nri-memshare';
export const DEFAULT_SHARES_DIR = '/run/nri-memshare/shares';
export const DEFAULT_DECLARATIONS_DIR = '/etc/nri-memshare/shares.d';
