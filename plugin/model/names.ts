// Name rules shared by declarations and annotations. Every share path component on the host is
// built only from strings that passed isDnsLabel, so this is the one gate against path tricks.

/** Kubernetes' DNS-1123 label limit (namespaces, container names). */
export const DNS_LABEL_MAX = 63;

const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;

/** True if `s` is a DNS-1123 label of at most `maxLength` characters. */
export function isDnsLabel(s: string, maxLength: number = DNS_LABEL_MAX): boolean {
  return s.length > 0 && s.length <= maxLength && DNS_LABEL.test(s);
}

/**
 * Why `s` is not a DNS-1123 label of at most `maxLength` characters, or undefined if it is.
 * The wording is meant to be read by a pod author.
 */
export function dnsLabelProblem(s: string, maxLength: number = DNS_LABEL_MAX): string | undefined {
  if (s.length === 0) return 'is empty';
  if (s.length > maxLength) return `is ${s.length} characters long, at most ${maxLength} allowed`;
  if (DNS_LABEL.test(s)) return undefined;
  return 'is not a DNS-1123 label (lowercase letters, digits and "-", starting and ending with a letter or digit)';
}

/** Quote untrusted text for an error message: escapes control characters, caps the length. */
export function quote(s: string, max = 80): string {
  const cut = s.length > max ? `${s.slice(0, max)}...` : s;
  return JSON.stringify(cut);
}

/** The "namespace/name" key used for maps of shares. */
export function shareKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
