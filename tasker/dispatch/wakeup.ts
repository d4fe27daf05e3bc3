/** Lets one waiter sleep until something it waits on may have changed. */
export class Wakeup {
  private resolve: (() => void) | undefined;

  /** Wakes the waiter, if any, to check its condition again. */
  wake(): void {
    const resolve = this.resolve;
    this.resolve = undefined;
    resolve?.();
  }

  /** Waits until `condition` holds, checked again at each `wake`. */
  async until(condition: () => boolean): Promise<void> {
    while (!condition()) {
      await new Promise<void>((resolve) => {
        this.resolve = resolve;
      });
    }
  }
}
