// The resource.k8s.io API as the DRA front door's API-server side uses it: the group, the request
// function both the claim reader and the slice publisher take (so tests can hand them a real
// server's or a fake's), and the reading of a Status answer.
import { isObject } from '../model';
import type { KubeRequest, KubeResponse } from '../kube/request';

export const RESOURCE_GROUP = 'resource.k8s.io';

/** One request to the API server: kubeRequest with the agent's credentials, or a test's. */
export type KubeSend = (r: KubeRequest) => Promise<KubeResponse>;

/** The parts of a Kubernetes Status answer worth reporting. */
export interface StatusDetail {
  message: string;
  reason: string;
  /** details.name: the object a 404 is about (absent when the resource type itself is unknown) */
  name: string | undefined;
}

/** Reads a Status body; anything else gives its first 200 characters as the message. */
export function statusDetail(body: string): StatusDetail {
  try {
    const s: unknown = JSON.parse(body);
    if (isObject(s) && s.kind === 'Status') {
      const details = isObject(s.details) ? s.details : {};
      return {
        message: typeof s.message === 'string' ? s.message : '',
        reason: typeof s.reason === 'string' ? s.reason : '',
        name: typeof details.name === 'string' ? details.name : undefined,
      };
    }
  } catch {
    /* not JSON */
  }
  return { message: body.trim().slice(0, 200), reason: '', name: undefined };
}

/** The server's Retry-After in ms (0: none), at most 5 minutes. */
export function retryAfterMs(res: KubeResponse): number {
  const ra = Number(res.headers['retry-after']);
  return Number.isFinite(ra) && ra > 0 ? Math.min(ra, 300) * 1000 : 0;
}
