import uPlot from 'uplot';

import { clock, dateTime, num } from './format.js';

interface ChartSpec {
  el: HTMLElement;
  series: Array<{ label: string; stroke: string; fill?: string }>;
  bars?: boolean;
}

/** A uPlot chart that follows its container's width. */
export class Chart {
  readonly #plot: uPlot;
  readonly #el: HTMLElement;
  readonly #series: number;

  constructor(spec: ChartSpec) {
    this.#el = spec.el;
    this.#series = spec.series.length;
    const bars = spec.bars ? uPlot.paths.bars?.({ size: [0.8, 40] }) : undefined;
    const opts: uPlot.Options = {
      width: this.#width(),
      height: 180,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { values: (_u, ticks) => ticks.map((t) => clock(t)), size: 30 },
        { values: (_u, ticks) => ticks.map((t) => num(t)), size: 46 },
      ],
      series: [{ value: (_u, v) => (v === null ? '' : dateTime(v)) }, ...spec.series.map((s) => ({ label: s.label, stroke: s.stroke, fill: s.fill, width: 2, points: { show: false }, ...(bars ? { paths: bars } : {}) }))],
    };
    this.#plot = new uPlot(opts, [[], ...spec.series.map(() => [])], spec.el);
    new ResizeObserver(() => this.#plot.setSize({ width: this.#width(), height: 180 })).observe(spec.el);
  }

  /** x: unix seconds; ys: one array per series. Labels follow the chosen time zone. */
  set(x: number[], ys: number[][]): void {
    this.#plot.setData([x, ...ys]);
  }

  /** Empties the chart (signed out: no data stays on the page). */
  clear(): void {
    this.#plot.setData([[], ...Array.from({ length: this.#series }, () => [])]);
  }

  /** Redraws (e.g. after the time zone changed). */
  redraw(): void {
    this.#plot.redraw(false, true);
  }

  #width(): number {
    return Math.max(260, this.#el.clientWidth || 320);
  }
}
