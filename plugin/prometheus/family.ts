// The shared part of every metric kind: a name, a help text, label names, and one child per
// distinct tuple of label values, looked up once and then updated with plain arithmetic (the NRI
// request path observes a histogram on every event). Text exposition format 0.0.4.
const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** `{a="x",b="y"}` for the given names and values, or '' when there are no labels. */
export function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts: string[] = [];
  for (let i = 0; i < names.length; i++) parts.push(`${names[i]}="${escapeLabel(values[i])}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export interface Metric {
  readonly name: string;
  render(out: string[]): void;
}

/** Shared bookkeeping of a labelled metric: one child per distinct label-value tuple. */
export abstract class Family<C> implements Metric {
  private readonly children = new Map<string, { values: string[]; child: C }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    readonly labelNames: readonly string[],
  ) {
    if (!NAME_RE.test(name)) throw new Error(`metric name ${JSON.stringify(name)}: not a valid Prometheus name`);
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l === 'le') throw new Error(`metric ${name}: label ${JSON.stringify(l)} is not allowed`);
    }
  }

  protected abstract make(): C;
  protected abstract renderChild(out: string[], labels: readonly string[], child: C): void;

  /** The child for these label values; keep it to update it without a lookup. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`metric ${this.name}: expected ${this.labelNames.length} label value(s), got ${values.length}`);
    }
    const key = values.length === 1 ? values[0] : values.join('\u0000');
    let entry = this.children.get(key);
    if (!entry) {
      entry = { values: values.slice(), child: this.make() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  /** Forget one child (e.g. the gauges of a share that was released). */
  remove(...values: string[]): void {
    this.children.delete(values.length === 1 ? values[0] : values.join('\u0000'));
  }

  /** Forget every child. */
  reset(): void {
    this.children.clear();
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    // an unlabelled metric is always shown, even before its first update
    if (this.labelNames.length === 0 && this.children.size === 0) this.labels();
    for (const { values, child } of this.children.values()) this.renderChild(out, values, child);
  }
}

/** A child that is one number: counters and gauges. */
export interface ValueChild {
  value: number;
}

/** A family whose children are one number each, rendered as `name{labels} value`. */
export abstract class ValueFamily<C extends ValueChild> extends Family<C> {
  protected renderChild(out: string[], labels: readonly string[], c: C): void {
    out.push(`${this.name}${labelText(this.labelNames, labels)} ${formatValue(c.value)}`);
  }
}
