// Device numbers of UB shares: the obmm driver registers a char region "OBMM_SHMDEV" with a
// dynamic major; each device node's minor is a memid.
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { wrapError } from '../../model';

export const OBMM_SHMDEV = 'OBMM_SHMDEV';

/** The major of OBMM_SHMDEV in a /proc/devices text, or undefined when it is not registered. */
export function parseShmdevMajor(text: string): number | undefined {
  let inChar = false;
  for (const line of text.split('\n')) {
    if (/^Character devices:/.test(line)) inChar = true;
    else if (/^Block devices:/.test(line)) inChar = false;
    else if (inChar) {
      const m = /^\s*(\d+)\s+(\S+)\s*$/.exec(line);
      if (m && m[2] === OBMM_SHMDEV) return Number(m[1]);
    }
  }
  return undefined;
}

/** Reads the major from the host's /proc/devices (path configurable for tests). */
export function readShmdevMajor(procDevices: string): number {
  let text: string;
  let fd: number | undefined;
  try {
    // non-blocking, and only a regular file (/proc/devices is one): a FIFO put there is refused,
    // not waited on with a binding's request waiting behind it
    fd = openSync(procDevices, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
    text = readFileSync(fd, 'utf8');
  } catch (err) {
    throw wrapError(`cannot read ${procDevices} for the ${OBMM_SHMDEV} device major`, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const major = parseShmdevMajor(text);
  if (major === undefined) throw new Error(`${procDevices} has no ${OBMM_SHMDEV} character device: is the obmm kernel module loaded?`);
  return major;
}

export const shmdevPath = (dir: string, memid: number): string => `${dir}/obmm_shmdev${memid}`;
