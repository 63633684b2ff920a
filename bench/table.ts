/** Shared by the benchmarks: medians and a plain-text table. */
export type Row = Record<string, string | number>;

/** A timed piece of work: the events it reports, wall seconds, and the process's CPU seconds (all threads). */
export interface TimedRun {
  events: number;
  seconds: number;
  cpuSeconds: number;
}

export async function timeEvents(work: () => Promise<number> | number): Promise<TimedRun> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const events = await work();
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { events, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const upper = sorted[mid] ?? NaN; // NaN: the median of nothing
  return sorted.length % 2 ? upper : ((sorted[mid - 1] ?? NaN) + upper) / 2;
}

export function printTable(title: string, rows: Row[]): void {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cell = (row: Row, column: string) => {
    const value = row[column];
    return typeof value === 'number' ? value.toLocaleString('en-US') : (value ?? '');
  };
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => String(cell(row, column)).length)));
  const line = (values: string[]) => '| ' + values.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ') + ' |';
  process.stdout.write(`\n${title}\n`);
  process.stdout.write(line(columns) + '\n');
  process.stdout.write('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|\n');
  for (const row of rows) process.stdout.write(line(columns.map((column) => String(cell(row, column)))) + '\n');
}
