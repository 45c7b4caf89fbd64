// Pod annotations -> share references for one container. Annotation values are untrusted input
// from any pod author: every namespace and share name that leaves this module is a validated
// DNS-1123 label, so no value can ever become a host path component other than such a label.
import { type ShareRef, RefusalError } from '../model/types';
import { DNS_LABEL_MAX, dnsLabelProblem, quote, shareKey } from '../model/names';

export const POD_ANNOTATION = 'memshare.nri.io/pod';
export const CONTAINER_ANNOTATION_PREFIX = 'memshare.nri.io/container.';
const ANNOTATION_PREFIX = 'memshare.nri.io/';
/** The value that opts one container out of the pod-level binding. */
export const NO_SHARES = '-';
/** Most share references one container may carry. */
export const MAX_REFS = 16;
/** Longest annotation value looked at; 16 refs of the longest names fit with room to spare. */
export const MAX_VALUE_LENGTH = 4096;

export interface ParsedBinding {
  /** the annotation key the refs came from; '' when neither key is present */
  annotation: string;
  /** empty when the container binds nothing */
  refs: ShareRef[];
}

export interface ParseOptions {
  /** longest share name (limits.maxNameLength; default 47) */
  maxNameLength?: number;
  /** most refs (default MAX_REFS) */
  maxRefs?: number;
}

/** The annotation key that binds shares to one container. */
export function containerAnnotation(containerName: string): string {
  return `${CONTAINER_ANNOTATION_PREFIX}${containerName}`;
}

/**
 * The shares a container asks for, from its pod's annotations.
 *
 * - `memshare.nri.io/container.<name>` wins over `memshare.nri.io/pod`; its value `-` means
 *   "none for this container". An empty (or all-blank) container value counts as absent, so the
 *   pod-level value applies (templating tools often emit empty values for unset keys).
 * - An empty pod value, or no key at all, means no binding.
 * - Items: `<share>[:ro|:rw]` or `<namespace>/<share>[:ro|:rw]`, comma-separated, blanks around
 *   items ignored; a plain share is in the pod's namespace; `rw` is the default.
 * - Refused (RefusalError, reason 'syntax'): empty items, other options, names that are not
 *   DNS-1123 labels, the same share twice (even with different options), more than maxRefs items.
 */
export function parseBinding(
  annotations: Readonly<Record<string, string>>,
  podNamespace: string,
  containerName: string,
  options: ParseOptions = {},
): ParsedBinding {
  const containerKey = containerAnnotation(containerName);
  const containerValue = annotations[containerKey];
  if (containerValue !== undefined && containerValue.trim() !== '') {
    if (containerValue.trim() === NO_SHARES) return { annotation: containerKey, refs: [] };
    return { annotation: containerKey, refs: parseRefs(containerKey, containerValue, podNamespace, options) };
  }
  const podValue = annotations[POD_ANNOTATION];
  if (podValue === undefined) return { annotation: '', refs: [] };
  // '-' at pod level would be odd but harmless: same meaning, no binding
  if (podValue.trim() === '' || podValue.trim() === NO_SHARES) return { annotation: POD_ANNOTATION, refs: [] };
  return { annotation: POD_ANNOTATION, refs: parseRefs(POD_ANNOTATION, podValue, podNamespace, options) };
}

/** Parse one annotation value; `annotation` is its key, used in error messages. */
export function parseRefs(annotation: string, value: string, podNamespace: string, options: ParseOptions = {}): ShareRef[] {
  const maxNameLength = options.maxNameLength ?? 47;
  const maxRefs = options.maxRefs ?? MAX_REFS;
  const refuse = (what: string, reason: string): never => {
    throw new RefusalError(`${annotation}: ${what}: ${reason}`, 'syntax');
  };
  if (value.length > MAX_VALUE_LENGTH) {
    refuse('value', `is ${value.length} characters long, at most ${MAX_VALUE_LENGTH} allowed`);
  }
  // the pod's namespace becomes a path component for plain names, so it passes the same gate
  const podNsProblem = dnsLabelProblem(podNamespace, DNS_LABEL_MAX);
  if (podNsProblem) refuse(`pod namespace ${quote(podNamespace)}`, podNsProblem);
  const items = value.split(',');
  if (items.length > maxRefs) refuse('value', `lists ${items.length} shares, at most ${maxRefs} allowed`);

  const refs: ShareRef[] = [];
  const seen = new Set<string>();
  items.forEach((raw, index) => {
    const item = raw.trim();
    const what = `item ${quote(item)}`;
    if (item === '') refuse(`item ${index + 1}`, 'is empty (check for a stray ",")');

    const colon = item.indexOf(':');
    const target = colon < 0 ? item : item.slice(0, colon);
    const option = colon < 0 ? '' : item.slice(colon + 1);
    if (colon >= 0 && option !== 'ro' && option !== 'rw') {
      refuse(what, `unknown option ${quote(option)} after ":" (allowed: "ro", "rw")`);
    }

    const slash = target.indexOf('/');
    let namespace = podNamespace;
    let name = target;
    if (slash >= 0) {
      namespace = target.slice(0, slash);
      name = target.slice(slash + 1);
      if (name.includes('/')) refuse(what, 'has more than one "/" (expected <share> or <namespace>/<share>)');
      const nsProblem = dnsLabelProblem(namespace, DNS_LABEL_MAX);
      if (nsProblem) refuse(what, `namespace ${quote(namespace)} ${nsProblem}`);
    }
    const nameProblem = dnsLabelProblem(name, maxNameLength);
    if (nameProblem) refuse(what, `share name ${quote(name)} ${nameProblem}`);

    const key = shareKey(namespace, name);
    if (seen.has(key)) refuse(what, `share "${key}" is listed more than once`);
    seen.add(key);
    refs.push({ namespace, name, readOnly: option === 'ro' });
  });
  return refs;
}

/**
 * Keys under memshare.nri.io/ that are neither the pod key nor a container key: likely typos
 * (e.g. "memshare.nri.io/containers.app"), worth a log line since they bind nothing.
 */
export function unknownAnnotationKeys(annotations: Readonly<Record<string, string>>): string[] {
  return Object.keys(annotations).filter(
    (k) =>
      k.startsWith(ANNOTATION_PREFIX) &&
      k !== POD_ANNOTATION &&
      !(k.startsWith(CONTAINER_ANNOTATION_PREFIX) && k.length > CONTAINER_ANNOTATION_PREFIX.length),
  );
}
