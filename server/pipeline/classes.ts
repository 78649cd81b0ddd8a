/** The organelle classes (DESIGN.md codes). A registry: everything class-specific reads from here. */
export interface OrganelleClass {
  code: number;
  name: string;
  label: string;
  /** Display colour in the viewer and figures. */
  color: string;
  /** Whether contacts with the ER are measured for this class. */
  measuresContacts: boolean;
}

export const CLASSES: readonly OrganelleClass[] = [
  { code: 1, name: "er", label: "endoplasmic reticulum", color: "#f2c500", measuresContacts: false },
  { code: 2, name: "mito", label: "mitochondrion", color: "#e6194b", measuresContacts: true },
  { code: 3, name: "ld", label: "lipid droplet", color: "#3cb4f0", measuresContacts: true },
  { code: 4, name: "lyso", label: "lysosome", color: "#3cb44b", measuresContacts: true },
  { code: 5, name: "perox", label: "peroxisome", color: "#f58231", measuresContacts: true },
  { code: 6, name: "nucleus", label: "nucleus", color: "#911eb4", measuresContacts: false },
];

export const MAX_CLASS_CODE = Math.max(...CLASSES.map((c) => c.code));

const byCode = new Map(CLASSES.map((c) => [c.code, c]));

export function classByCode(code: number): OrganelleClass | undefined {
  return byCode.get(code);
}

export function classByName(name: string): OrganelleClass | undefined {
  return CLASSES.find((c) => c.name === name);
}
