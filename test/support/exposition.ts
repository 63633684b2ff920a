/** Reading a series from Prometheus's text exposition: a /metrics scrape, or a prom-client Registry's metrics(). */

/** The line of `series` (its name and labels as written, `name{label="value"}`), if it is there. */
export function seriesLine(exposition: string, series: string): string | undefined {
  return exposition.split('\n').find((line) => line.startsWith(`${series} `));
}

/** The value of `series`; 0 when it is not there (a labelled counter is written once counted). */
export function seriesValue(exposition: string, series: string): number {
  return Number(seriesLine(exposition, series)?.split(' ')[1] ?? 0);
}

/** name → value of every label-less sample in a Prometheus text exposition. */
export function samples(exposition: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of exposition.split('\n')) {
    const [, name, value] = /^([a-z_:][a-z0-9_:]*) (\S+)$/i.exec(line) ?? [];
    if (name !== undefined) values.set(name, Number(value));
  }
  return values;
}
