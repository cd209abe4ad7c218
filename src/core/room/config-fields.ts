// One muc#roomconfig field = one small spec: how it appears in the form and how a submitted value
// changes the room configuration. Feature plugins register their own fields with `configField`.
import type { RoomEngine } from "./engine.js";
import { StanzaError } from "../stanza-error.js";
import { parseFormBoolean, type FieldType, type FormField } from "../../xmpp/forms.js";
import type { RoomConfig } from "./types.js";

export type MutableConfig = { -readonly [K in keyof RoomConfig]: RoomConfig[K] };

export interface ConfigFieldSpec {
  var: string;
  label: string;
  type: FieldType;
  options?: { label?: string; value: string }[];
  read(config: RoomConfig): string[];
  /** Applies submitted values; throws StanzaError (not-acceptable) for a value it cannot take. */
  write(config: MutableConfig, values: string[]): void;
  /** Position in the form: lower comes first. */
  order: number;
}

export function configField(rooms: RoomEngine, spec: ConfigFieldSpec): void {
  rooms.hooks.on("room/config-form", ({ room, fields }) => {
    const field: FormField & { order?: number } = { var: spec.var, type: spec.type, label: spec.label, values: spec.read(room.config), options: spec.options };
    fields.push(Object.assign(field, { order: spec.order }));
  });
  rooms.hooks.on("room/config-submitted", ({ values, config }) => {
    const submitted = values.get(spec.var);
    if (submitted !== undefined) spec.write(config, submitted);
  });
}

const invalid = (field: string) => new StanzaError("modify", "not-acceptable", `Invalid value for ${field}`);

/** The one value of a single-valued field (boolean, list-single, text-single: XEP-0004 §3.3); more is refused. */
export function singleValue(field: string, values: string[]): string | undefined {
  if (values.length > 1) throw new StanzaError("modify", "not-acceptable", `${field} takes exactly one value`);
  return values[0];
}

/** A boolean field bound to one boolean setting. */
export function booleanField(var_: string, label: string, key: { [K in keyof RoomConfig]: RoomConfig[K] extends boolean ? K : never }[keyof RoomConfig], order: number): ConfigFieldSpec {
  return {
    var: var_,
    label,
    type: "boolean",
    order,
    read: (config) => [config[key] ? "1" : "0"],
    write: (config, values) => {
      const value = parseFormBoolean(singleValue(var_, values));
      if (value === undefined) throw invalid(var_);
      config[key] = value;
    },
  };
}

/** A text field bound to one string setting, with a length limit. */
export function textField(var_: string, label: string, key: { [K in keyof RoomConfig]: RoomConfig[K] extends string ? K : never }[keyof RoomConfig], order: number, maxLength = 1000, type: FieldType = "text-single"): ConfigFieldSpec {
  return {
    var: var_,
    label,
    type,
    order,
    read: (config) => [config[key] as string],
    write: (config, values) => {
      const value = type === "text-multi" ? values.join("\n") : (singleValue(var_, values) ?? "");
      if (value.length > maxLength) throw invalid(var_);
      (config as Record<string, unknown>)[key] = value;
    },
  };
}

/** A list-single field whose value is one of the options. */
export function choiceField<K extends keyof RoomConfig>(var_: string, label: string, key: K, choices: { value: string; label: string; setting: RoomConfig[K] }[], order: number): ConfigFieldSpec {
  return {
    var: var_,
    label,
    type: "list-single",
    order,
    options: choices.map(({ value, label }) => ({ value, label })),
    read: (config) => [choices.find((c) => c.setting === config[key])?.value ?? ""],
    write: (config, values) => {
      const value = singleValue(var_, values);
      const choice = choices.find((c) => c.value === value);
      if (!choice) throw invalid(var_);
      config[key] = choice.setting as MutableConfig[K];
    },
  };
}
