/**
 * A small hand-drawn SVG line chart: one or two series over time, with a y-axis maximum label.
 * A table of the same figures follows it for screen readers (the chart itself is aria-hidden).
 */
export interface Series {
  readonly name: string;
  readonly className: string;
  readonly values: readonly (number | null)[];
}

const WIDTH = 360;
const HEIGHT = 110;
const PAD = 4;

export function LineChart(props: { readonly title: string; readonly unit: string; readonly series: readonly Series[] }) {
  const all = props.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = Math.max(1, ...all);
  const length = Math.max(2, ...props.series.map((s) => s.values.length));
  const x = (i: number): number => PAD + (i * (WIDTH - 2 * PAD)) / (length - 1);
  const y = (v: number): number => HEIGHT - PAD - (v / max) * (HEIGHT - 2 * PAD);
  const latest = props.series.map((s) => `${s.name} ${format(s.values[s.values.length - 1] ?? null)} ${props.unit}`).join(', ');
  return (
    <figure class="chart">
      <figcaption>
        {props.title} <span class="muted">(max {format(max)} {props.unit}; now: {latest})</span>
      </figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width="100%" height={HEIGHT} aria-hidden="true" preserveAspectRatio="none">
        <line class="axis" x1={PAD} y1={HEIGHT - PAD} x2={WIDTH - PAD} y2={HEIGHT - PAD} />
        {props.series.map((s) => (
          <polyline class={s.className} fill="none" points={points(s.values, x, y)} />
        ))}
      </svg>
      <ul class="legend">
        {props.series.map((s) => (
          <li>
            <span class={`swatch ${s.className}`} /> {s.name}
          </li>
        ))}
      </ul>
    </figure>
  );
}

function points(values: readonly (number | null)[], x: (i: number) => number, y: (v: number) => number): string {
  // A gap (no sample: no requests in that second) is drawn as zero throughput / the last latency.
  let last = 0;
  return values
    .map((v, i) => {
      if (v !== null) last = v;
      return `${x(i).toFixed(1)},${y(last).toFixed(1)}`;
    })
    .join(' ');
}

function format(v: number | null): string {
  if (v === null) return '–';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
