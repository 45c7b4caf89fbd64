// The durable ownership ledger: who holds which share on this node, surviving crashes.
export { Ledger, type LedgerOptions, type LedgerStats } from './ledger';
export { type BindingRecord, type BindingState, type ClaimRecord, type HeldShare, type ReleaseState, claimRecordProblem, recordProblem, heldProblem } from './record';
export { encodeLine, decodeLines, type DecodedLines } from './framing';
