// Encoding of the ttrpc envelope (proto/ttrpc.proto) with the static codecs generated from it.
import { RequestCodec, ResponseCodec } from './ttrpc.pb';

export interface KeyValue {
  key: string;
  value: string;
}

export interface RequestEnvelope {
  service: string;
  method: string;
  payload: Uint8Array;
  /** nanoseconds; 0 means no deadline */
  timeoutNano: number;
  metadata: KeyValue[];
}

export interface ResponseEnvelope {
  status?: { code: number; message: string };
  payload: Uint8Array;
}


interface DecodedRequest {
  service: string;
  method: string;
  payload: Uint8Array;
  timeoutNano: number | { toNumber(): number };
  metadata: KeyValue[];
}

export function encodeRequest(r: RequestEnvelope): Uint8Array {
  // proto3 leaves default values off the wire, as Go does; protobufjs would write any present field
  const m: Partial<RequestEnvelope> = { service: r.service, method: r.method };
  if (r.payload.length) m.payload = r.payload;
  if (r.timeoutNano) m.timeoutNano = r.timeoutNano;
  if (r.metadata.length) m.metadata = r.metadata;
  return RequestCodec.encode(m);
}

export function decodeRequest(bytes: Uint8Array): RequestEnvelope {
  const d = RequestCodec.decode(bytes) as unknown as DecodedRequest;
  const t = d.timeoutNano;
  return {
    service: d.service,
    method: d.method,
    payload: asBytes(d.payload),
    timeoutNano: typeof t === 'number' ? t : t.toNumber(),
    metadata: d.metadata,
  };
}

export function encodeResponse(r: ResponseEnvelope): Uint8Array {
  return ResponseCodec.encode(r);
}

export function decodeResponse(data: Uint8Array): ResponseEnvelope {
  const d = ResponseCodec.decode(data) as unknown as ResponseEnvelope;
  return { status: d.status, payload: asBytes(d.payload) };
}

// an absent bytes field reads as the prototype's [] (Go omits empty bytes): always hand out bytes
const EMPTY = new Uint8Array(0);
const asBytes = (v: Uint8Array | undefined): Uint8Array => (v instanceof Uint8Array ? v : EMPTY);
