// Encoding of the ttrpc envelope (proto/ttrpc.proto) with protobufjs.
import * as protobuf from 'protobufjs';
import { protoFile } from './proto-path';

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

const root = protobuf.loadSync(protoFile('ttrpc.proto'));
const RequestType = root.lookupType('ttrpc.Request');
const ResponseType = root.lookupType('ttrpc.Response');

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
  return RequestType.encode(m as unknown as protobuf.Message).finish();
}

export function decodeRequest(bytes: Uint8Array): RequestEnvelope {
  const d = RequestType.decode(bytes) as unknown as DecodedRequest;
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
  return ResponseType.encode(r as unknown as protobuf.Message).finish();
}

export function decodeResponse(data: Uint8Array): ResponseEnvelope {
  const d = ResponseType.decode(data) as unknown as ResponseEnvelope;
  return { status: d.status, payload: asBytes(d.payload) };
}

// protobufjs leaves an absent bytes field as a plain [] (Go omits empty bytes): always hand out bytes
const EMPTY = new Uint8Array(0);
const asBytes = (v: Uint8Array | undefined): Uint8Array => (v instanceof Uint8Array ? v : EMPTY);
