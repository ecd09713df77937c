// Collision-aware label placement for the region map (issue 13, item 1). Pure: boxes in, places out.
// Every label is tried at the positions around its anchor a cartographer would (right, left, above,
// below, the diagonals), then further out with a leader line, and takes the first place that stays
// inside the map and touches neither a dot nor a label already placed. Labels are placed in priority
// order, so when space runs out it is the least important label (a settlement's, before a hub's) that
// is left out — and a feature without a label can still be tapped and identified.

const GAP = 4; // px between a dot's edge and its label
const PAD = 2; // px kept clear around every box

/** Do two boxes {x0, y0, x1, y1} overlap (with `pad` px kept between them)? */
export const overlaps = (a, b, pad = PAD) => a.x0 < b.x1 + pad && b.x0 < a.x1 + pad && a.y0 < b.y1 + pad && b.y0 < a.y1 + pad;

const inside = (box, bounds) => box.x0 >= bounds.x0 && box.y0 >= bounds.y0 && box.x1 <= bounds.x1 && box.y1 <= bounds.y1;

function candidates(item) {
  const { x, y, w, h, r } = item;
  const d = r + GAP;
  const near = [
    [x + d, y - h / 2], [x - d - w, y - h / 2], [x - w / 2, y - d - h], [x - w / 2, y + d],
    [x + d * 0.7, y - d * 0.7 - h], [x + d * 0.7, y + d * 0.7], [x - d * 0.7 - w, y - d * 0.7 - h], [x - d * 0.7 - w, y + d * 0.7],
  ].map(([bx, by]) => ({ x0: bx, y0: by, x1: bx + w, y1: by + h, leader: false }));
  const far = [];
  for (const dist of [18, 30, 46, 64, 86, 112, 140]) {
    for (let i = 0; i < 24; i++) {
      const a = (i / 24) * 2 * Math.PI;
      const ax = x + Math.cos(a) * (r + dist);
      const ay = y + Math.sin(a) * (r + dist);
      const c = Math.cos(a);
      const bx = c > 0.35 ? ax : c < -0.35 ? ax - w : ax - w / 2;
      const by = c > 0.35 || c < -0.35 ? ay - h / 2 : Math.sin(a) > 0 ? ay : ay - h;
      far.push({ x0: bx, y0: by, x1: bx + w, y1: by + h, leader: true, ax, ay });
    }
  }
  return item.nearOnly ? near : [...near, ...far];
}

/**
 * items: [{ key, x, y, w, h, r, priority, nearOnly }] — anchor (x, y) with a dot of radius r (0 for none), label w × h;
 * nearOnly: only right beside its anchor, never out on a leader line (left out instead);
 * dots: [{ x, y, r }] every dot on the map (no label may cover one); bounds: { x0, y0, x1, y1 };
 * boxes: [{ x0, y0, x1, y1 }] other areas no label may cover (controls drawn over the map).
 * Returns Map key → { x0, y0, x1, y1, leader, ax, ay } for each label placed; a label left out is absent.
 */
export function placeLabels(items, dots, bounds, boxes = []) {
  const blocked = [...dots.map((d) => ({ x0: d.x - d.r, y0: d.y - d.r, x1: d.x + d.r, y1: d.y + d.r })), ...boxes];
  const placed = [];
  const out = new Map();
  for (const item of [...items].sort((a, b) => a.priority - b.priority)) {
    for (const c of candidates(item)) {
      if (!inside(c, bounds)) continue;
      if (blocked.some((b) => overlaps(c, b))) continue;
      if (placed.some((p) => overlaps(c, p))) continue;
      placed.push(c);
      out.set(item.key, c);
      break;
    }
  }
  return out;
}
