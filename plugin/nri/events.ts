// Which events a plugin subscribes to, kept within what the runtime accepts.
import { Event, VALID_EVENTS_V0_10, VALID_EVENTS_V0_6, eventBit, type ConfigureRequest } from './api';
import type { Handlers } from './handlers';

const handlerEvents: Array<[keyof Handlers, Event]> = [
  ['runPodSandbox', Event.RUN_POD_SANDBOX],
  ['stopPodSandbox', Event.STOP_POD_SANDBOX],
  ['removePodSandbox', Event.REMOVE_POD_SANDBOX],
  ['createContainer', Event.CREATE_CONTAINER],
  ['postCreateContainer', Event.POST_CREATE_CONTAINER],
  ['startContainer', Event.START_CONTAINER],
  ['postStartContainer', Event.POST_START_CONTAINER],
  ['updateContainer', Event.UPDATE_CONTAINER],
  ['postUpdateContainer', Event.POST_UPDATE_CONTAINER],
  ['stopContainer', Event.STOP_CONTAINER],
  ['removeContainer', Event.REMOVE_CONTAINER],
];

/** The events a set of handlers implies, as a mask. */
export function eventsOf(handlers: Handlers): number {
  let mask = 0;
  for (const [name, event] of handlerEvents) if (typeof handlers[name] === 'function') mask |= eventBit(event);
  return mask;
}

/**
 * The runtime's NRI generation: v0.10 added events, and a runtime older than that refuses a mask
 * with their bits ("invalid plugin events"). NRI_version arrives only from v0.12; before that the
 * containerd version tells (2.2 shipped NRI v0.10).
 */
export function runtimeAcceptsV010Events(req: ConfigureRequest): boolean {
  if (req.nriVersion) return true;
  if (req.runtimeName !== 'containerd') return false;
  const m = /^v?(\d+)\.(\d+)/.exec(req.runtimeVersion);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 2 || (major === 2 && minor >= 2);
}

/** The mask to answer Configure with: never 0 (that means "everything"), never beyond the runtime's valid set. */
export function subscriptionMask(wanted: number, req: ConfigureRequest): number {
  const valid = runtimeAcceptsV010Events(req) ? VALID_EVENTS_V0_10 : VALID_EVENTS_V0_6;
  const mask = wanted & valid;
  if (mask === 0) throw new Error(`nri: no event to subscribe to (wanted 0x${wanted.toString(16)}, runtime accepts 0x${valid.toString(16)})`);
  return mask;
}
