// Evicting a container that runs without the shares it asked for (created while the agent was
// down). NRI's UpdateContainers carries evictions, but the runtimes this product supports
// (NRI 0.6 in containerd 1.7, 0.8 in 2.0/2.1) ignore them there; so the agent also stops the
// container itself: SIGKILL to its init process, and the kubelet recreates it, with its memory.
import { readFileSync, closeSync } from 'node:fs';
import * as native from '../../native';

export type KillOutcome = 'killed' | 'gone' | 'no-pid' | 'not-this-container';

/**
 * Kills the init process of container `containerId`, whose pid the runtime reported. A pidfd pins
 * the process first, and its cgroup must name the container, so a pid reused by another process
 * since the runtime looked is never signalled.
 */
export function killContainerInit(containerId: string, pid: number): KillOutcome {
  if (!pid) return 'no-pid';
  let fd: number;
  try {
    fd = native.pidfdOpen(pid);
  } catch (err) {
    if ((err as native.SyscallError).code === 'ESRCH') return 'gone';
    throw err;
  }
  try {
    let cgroup: string;
    try {
      cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    } catch {
      return 'gone';
    }
    // cgroupfs ("/kubepods/.../<id>") and systemd ("cri-containerd-<id>.scope") paths both carry the id
    if (!cgroup.includes(containerId)) return 'not-this-container';
    try {
      native.pidfdSendSignal(fd, 9);
    } catch (err) {
      if ((err as native.SyscallError).code === 'ESRCH') return 'gone';
      throw err;
    }
    return 'killed';
  } finally {
    closeSync(fd);
  }
}
