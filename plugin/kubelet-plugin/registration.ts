// The Registration service the kubelet's plugin watcher calls on <registry>/<driver>-reg.sock:
// GetInfo says what the plugin is and where its DRA socket is; NotifyRegistrationStatus brings the
// kubelet's verdict, kept here and logged (a refusal loudly: the kubelet will not call the driver).
import type { Log } from '../log/log';
import * as pb from './pluginregistration.pb';
import { unaryMethod, type Grpc } from './grpc';

/** The plugin type the kubelet's DRA handler is registered under. */
export const DRA_PLUGIN_TYPE = 'DRAPlugin';

/** The kubelet's last word on the registration. */
export type RegistrationState =
  | { state: 'waiting' }
  | { state: 'registered'; at: Date }
  | { state: 'refused'; error: string; at: Date };

export interface RegistrationOptions {
  driverName: string;
  /** the DRA socket's path, as the kubelet is to dial it */
  endpoint: string;
  /** the gRPC services served there, most preferred first */
  supportedVersions: readonly string[];
  log?: Log;
  onStatus?: (s: RegistrationState) => void;
}

export function registrationService(opts: RegistrationOptions): {
  definition: Grpc.ServiceDefinition;
  handlers: Grpc.UntypedServiceImplementation;
  state: () => RegistrationState;
} {
  const m = pb.services['pluginregistration.Registration'];
  let current: RegistrationState = { state: 'waiting' };
  const definition: Grpc.ServiceDefinition = {
    GetInfo: unaryMethod(m.GetInfo),
    // an undecodable status is read as a refusal that says so, rather than failing the kubelet's call
    NotifyRegistrationStatus: unaryMethod(m.NotifyRegistrationStatus, (b: Buffer): { pluginRegistered: boolean; error: string } => {
      try {
        const s = m.NotifyRegistrationStatus.request.decode(b);
        return { pluginRegistered: s.pluginRegistered === true, error: typeof s.error === 'string' ? s.error : '' };
      } catch (err) {
        return { pluginRegistered: false, error: `an undecodable RegistrationStatus (${(err as Error).message})` };
      }
    }),
  };
  const handlers: Grpc.UntypedServiceImplementation = {
    GetInfo: ((_call, callback) => {
      callback(null, {
        type: DRA_PLUGIN_TYPE,
        name: opts.driverName,
        endpoint: opts.endpoint,
        supportedVersions: [...opts.supportedVersions],
      });
    }) as Grpc.handleUnaryCall<unknown, object>,
    NotifyRegistrationStatus: ((call, callback) => {
      const s = call.request;
      const at = new Date();
      if (s.pluginRegistered) {
        current = { state: 'registered', at };
        opts.log?.info({ driver: opts.driverName, endpoint: opts.endpoint }, 'kubelet plugin: registered with the kubelet');
      } else {
        const error = s.error || 'the kubelet gave no reason';
        current = { state: 'refused', error, at };
        opts.log?.error(
          { driver: opts.driverName, endpoint: opts.endpoint, err: error },
          `kubelet plugin: the kubelet refused to register DRA driver ${opts.driverName}: ${error}`,
        );
      }
      opts.onStatus?.(current);
      callback(null, {});
    }) as Grpc.handleUnaryCall<{ pluginRegistered: boolean; error: string }, object>,
  };
  return { definition, handlers, state: () => current };
}
