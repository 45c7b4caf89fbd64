// Kubernetes resource quantities ("5120Mi", "1.5Gi", "1e9", "500M") as exact byte counts.
// Arithmetic is done in BigInt so "0.1Gi" or "1e-3k" are judged exactly, never through floats.

/** Longest quantity string accepted; real quantities are a handful of characters. */
const MAX_LENGTH = 64;
/** Largest decimal exponent magnitude accepted; 1e18 is already past MAX_SAFE_INTEGER. */
const MAX_EXPONENT = 40;

// <sign><number><suffix>, as in k8s.io/apimachinery/pkg/api/resource. The exponent alternative
// comes before the bare "E" (exa) so that "1E3" is 1000 while "1E" is 10^18.
const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[mkMGTPE])?$/;

const BINARY: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL: Record<string, number> = { m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** A quantity string that cannot be a byte count; the message says which and why. */
export class QuantityError extends Error {
  constructor(readonly input: string, readonly reason: string) {
    super(`quantity ${JSON.stringify(input.length > MAX_LENGTH ? `${input.slice(0, MAX_LENGTH)}...` : input)}: ${reason}`);
    this.name = 'QuantityError';
  }
}

/**
 * Parse a Kubernetes quantity into a whole number of bytes.
 * Throws QuantityError for empty or malformed input, negatives, fractions of a byte
 * (e.g. "1500m", "0.5") and values beyond Number.MAX_SAFE_INTEGER.
 */
export function parseQuantityBytes(input: string): number {
  if (input.length === 0) throw new QuantityError(input, 'is empty');
  if (input.length > MAX_LENGTH) throw new QuantityError(input, `is longer than ${MAX_LENGTH} characters`);
  const m = QUANTITY.exec(input);
  if (!m) {
    throw new QuantityError(
      input,
      'is not a Kubernetes quantity (expected e.g. "512Mi", "5Gi", "1.5Gi", "500M", "1e9" or a plain number of bytes)',
    );
  }
  const [, sign, number, suffix = ''] = m;
  const [intPart, fracPart = ''] = number.split('.');
  let mantissa = BigInt(`${intPart}${fracPart}` || '0');
  if (sign === '-' && mantissa !== 0n) throw new QuantityError(input, 'is negative');

  let exp10 = -fracPart.length;
  let exp2 = 0;
  if (suffix in BINARY) exp2 = BINARY[suffix];
  else if (suffix in DECIMAL) exp10 += DECIMAL[suffix];
  else if (suffix !== '') {
    const e = Number(suffix.slice(1));
    if (Math.abs(e) > MAX_EXPONENT) {
      if (mantissa === 0n) return 0;
      throw new QuantityError(input, e > 0 ? 'is larger than the largest supported size' : 'is not a whole number of bytes');
    }
    exp10 += e;
  }
  if (mantissa === 0n) return 0;

  mantissa <<= BigInt(exp2);
  if (exp10 >= 0) {
    mantissa *= 10n ** BigInt(exp10);
  } else {
    const div = 10n ** BigInt(-exp10);
    if (mantissa % div !== 0n) throw new QuantityError(input, 'is not a whole number of bytes');
    mantissa /= div;
  }
  if (mantissa > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new QuantityError(input, `is larger than the largest supported size (${Number.MAX_SAFE_INTEGER} bytes)`);
  }
  return Number(mantissa);
}

const UNITS: Array<[string, number]> = [['EiB', 60], ['PiB', 50], ['TiB', 40], ['GiB', 30], ['MiB', 20], ['KiB', 10]];

/** A byte count for people: "5 GiB", "1.5 GiB", "1000 bytes"; exact when the unit divides it. */
export function formatBytes(bytes: number): string {
  for (const [unit, shift] of UNITS) {
    const size = 2 ** shift;
    if (bytes >= size) {
      const v = bytes / size;
      return Number.isInteger(v) ? `${v} ${unit}` : `${v.toFixed(2).replace(/\.?0+$/, '')} ${unit} (${bytes} bytes)`;
    }
  }
  return `${bytes} bytes`;
}
