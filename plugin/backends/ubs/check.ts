// What `check-config` can tell of a ubs config beyond its keys: whether the SDK library loads with
// every function the agent binds. Nothing is called in it, so the daemon is not contacted.
import { loadUbsSdk } from '../../../native/ubs-sdk';
import { messageOf } from '../../model';
import type { UbsBackendConfig } from './config';

/** Problems in the "backend.<key>: reason" form of the config reader; [] when the library loads. */
export function ubsConfigProblems(c: UbsBackendConfig): string[] {
  try {
    loadUbsSdk(c.sdkLibrary);
    return [];
  } catch (err) {
    return [`backend.sdkLibrary: ${messageOf(err)}`];
  }
}
