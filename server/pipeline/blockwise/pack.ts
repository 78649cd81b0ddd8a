/**
 * Typed arrays in one object, for per-block results that tasks leave in the work store: a 4-byte header length,
 * a JSON header ({name: [type, length]} in order) and the arrays, each 8-byte aligned, in host byte order (the
 * work store is private to one run on machines of one kind).
 */
export type Packable = Uint8Array | Uint32Array | Int32Array | Float32Array | Float64Array;
type PackType = "uint8" | "uint32" | "int32" | "float32" | "float64";

const CTORS = { uint8: Uint8Array, uint32: Uint32Array, int32: Int32Array, float32: Float32Array, float64: Float64Array } as const;

function typeOf(a: Packable): PackType {
  if (a instanceof Uint8Array) return "uint8";
  if (a instanceof Uint32Array) return "uint32";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof Float32Array) return "float32";
  return "float64";
}

const align8 = (n: number): number => (n + 7) & ~7;

export function packArrays(arrays: Record<string, Packable>, meta: Record<string, number> = {}): Uint8Array {
  const header = JSON.stringify({ arrays: Object.entries(arrays).map(([name, a]) => [name, typeOf(a), a.length]), meta });
  const head = new TextEncoder().encode(header);
  let size = align8(4 + head.length);
  for (const a of Object.values(arrays)) size += align8(a.byteLength);
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 4);
  let at = align8(4 + head.length);
  for (const a of Object.values(arrays)) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
    at += align8(a.byteLength);
  }
  return out;
}

export interface Unpacked {
  arrays: Record<string, Packable>;
  meta: Record<string, number>;
}

export function unpackArrays(bytes: Uint8Array, what: string): Unpacked {
  const fail = (why: string): never => {
    throw new RangeError(`${what}: ${why}`);
  };
  if (bytes.length < 4) fail("too short");
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (4 + n > bytes.length) fail("header runs past the end");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n))) as { arrays: [string, PackType, number][]; meta: Record<string, number> };
  // Copy into an aligned buffer once; views below share it.
  const own = new Uint8Array(bytes.length);
  own.set(bytes);
  let at = align8(4 + n);
  const arrays: Record<string, Packable> = {};
  for (const [name, type, length] of header.arrays) {
    const C = CTORS[type];
    if (!C) fail(`unknown array type ${type}`);
    const byteLength = length * C.BYTES_PER_ELEMENT;
    if (at + byteLength > own.length) fail(`array ${name} runs past the end`);
    arrays[name] = new C(own.buffer, at, length);
    at += align8(byteLength);
  }
  return { arrays, meta: header.meta };
}

/** The named array, checked to be of the expected type. */
export function arrayOf<C extends Packable>(u: Unpacked, name: string, ctor: abstract new (...args: never[]) => C, what: string): C {
  const a = u.arrays[name];
  if (!(a instanceof ctor)) throw new RangeError(`${what}: no ${ctor.name} ${name}`);
  return a;
}
