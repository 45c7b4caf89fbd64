// The durable ownership ledger: who holds which share on this node, surviving crashes.
export { Ledger, type LedgerOptions, type LedgerStats } from './ledger';
export { type BindingRecord, type BindingState, type HeldShare, type ReleaseState, recordProblem, heldProblem } from './record';
export { encodeLine, decodeLines, type DecodedLines } from './framing';
