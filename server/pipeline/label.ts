/**
 * 3D connected components of a class volume: voxels join when they share a class and touch by face, edge
 * or corner (26-connectivity, as DESIGN.md states). One pass with union-find over the 13 already-visited
 * neighbours, then a relabel pass. Hand-written because it is a hot kernel: no maintained Node library does
 * anisotropic-volume CCL on typed arrays.
 */
export interface Components {
  /** Instance id per voxel (0 = background), ids 1..count numbered by first voxel in z, y, x raster order. */
  labels: Uint32Array;
  count: number;
  /** classOf[id] is the class code of instance id (classOf[0] = 0). */
  classOf: Uint8Array;
  /** voxel count per id. */
  voxels: Float64Array;
}

export function connectedComponents(classes: Uint8Array, shape: readonly [number, number, number]): Components {
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;
  if (classes.length !== sxy * nz) throw new RangeError(`class volume has ${classes.length} voxels, shape needs ${sxy * nz}`);
  const labels = new Uint32Array(classes.length);
  let parent = new Uint32Array(1024);
  let next = 1;

  const find = (a: number): number => {
    let r = a;
    while (parent[r] !== r) r = parent[r];
    while (parent[a] !== r) {
      const up = parent[a];
      parent[a] = r;
      a = up;
    }
    return r;
  };
  // Union by smaller root keeps each component's root at its first-created label, i.e. its first voxel.
  const union = (a: number, b: number): number => {
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) return ra;
    if (ra < rb) {
      parent[rb] = ra;
      return ra;
    }
    parent[ra] = rb;
    return rb;
  };

  // Defined once, outside the loops: a closure per voxel cost more than the labelling itself.
  const link = (l: number, j: number, c: number): number => {
    if (classes[j] !== c) return l;
    const lj = labels[j];
    return l === 0 ? find(lj) : union(l, lj);
  };

  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const row = z * sxy + y * nx;
      for (let x = 0; x < nx; x++) {
        const i = row + x;
        const c = classes[i];
        if (c === 0) continue;
        let l = 0;
        const x0 = x > 0;
        const x1 = x < nx - 1;
        if (x0 && classes[i - 1] === c) {
          // The left voxel shares our class, so it already joined every neighbour we share with it:
          // only the column at x+1 is new (4 voxels instead of 13).
          l = labels[i - 1];
          if (x1) {
            if (y > 0) l = link(l, i - nx + 1, c);
            if (z > 0) {
              const p = i - sxy + 1;
              if (y > 0) l = link(l, p - nx, c);
              l = link(l, p, c);
              if (y < ny - 1) l = link(l, p + nx, c);
            }
          }
        } else {
          if (y > 0) {
            const j = i - nx;
            if (x0) l = link(l, j - 1, c);
            l = link(l, j, c);
            if (x1) l = link(l, j + 1, c);
          }
          if (z > 0) {
            const p = i - sxy;
            for (let dy = -1; dy <= 1; dy++) {
              if ((dy < 0 && y === 0) || (dy > 0 && y === ny - 1)) continue;
              const j = p + dy * nx;
              if (x0) l = link(l, j - 1, c);
              l = link(l, j, c);
              if (x1) l = link(l, j + 1, c);
            }
          }
        }
        if (l === 0) {
          if (next === parent.length) {
            const grown = new Uint32Array(parent.length * 2);
            grown.set(parent);
            parent = grown;
          }
          parent[next] = next;
          l = next++;
        }
        labels[i] = l;
      }
    }
  }

  const finalId = new Uint32Array(next);
  let count = 0;
  for (let p = 1; p < next; p++) {
    const r = find(p);
    finalId[p] = r === p ? ++count : finalId[r];
  }
  const classOf = new Uint8Array(count + 1);
  const voxels = new Float64Array(count + 1);
  for (let i = 0; i < labels.length; i++) {
    const p = labels[i];
    if (p === 0) continue;
    const id = finalId[p];
    labels[i] = id;
    classOf[id] = classes[i];
    voxels[id]++;
  }
  return { labels, count, classOf, voxels };
}
