// A counter: a number that only goes up (reset only by a restart).
import { ValueFamily } from './family';

export class CounterChild {
  value = 0;
  inc(by = 1): void {
    if (!(by >= 0)) throw new Error(`counter increment must be >= 0, got ${by}`);
    this.value += by;
  }
}

export class Counter extends ValueFamily<CounterChild> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, 'counter', labelNames);
  }
  protected make(): CounterChild {
    return new CounterChild();
  }
  inc(by = 1): void {
    this.labels().inc(by);
  }
}
