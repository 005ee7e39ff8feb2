// Okabe-Ito colours, the same order as the PDF report's charts: a run keeps
// its colour across every chart of a selection.
export const PALETTE = [
  "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

export function colour(i: number): string {
  return PALETTE[i % PALETTE.length];
}
