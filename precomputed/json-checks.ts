/** Small checks shared by the validators of info, annotation and segment-property JSON. */

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export type IntegerType = "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32";

/** Inclusive value ranges of the integer types the precomputed specs allow for properties. */
export const INTEGER_RANGES: Readonly<Record<IntegerType, readonly [number, number]>> = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
};

/** The range of an integer type; undefined for float and colour types. */
export function integerRange(type: string): readonly [number, number] | undefined {
  return Object.hasOwn(INTEGER_RANGES, type) ? INTEGER_RANGES[type as IntegerType] : undefined;
}
