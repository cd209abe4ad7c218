// XEP-0004 data forms: one parse/build pair. Only what MUC needs: typed fields, values, options.
import xml, { type Element } from "@xmpp/xml";
import { NS } from "./stanza.js";

export type FieldType =
  | "boolean" | "fixed" | "hidden" | "jid-multi" | "jid-single"
  | "list-multi" | "list-single" | "text-multi" | "text-private" | "text-single";

export interface FormField {
  var: string;
  type?: FieldType;
  label?: string;
  values: string[];
  options?: { label?: string; value: string }[];
  required?: boolean;
}

export interface DataForm {
  type: "form" | "submit" | "cancel" | "result";
  formType?: string;
  title?: string;
  instructions?: string;
  fields: FormField[];
}

export function buildForm(form: DataForm): Element {
  const fields = form.formType
    ? [{ var: "FORM_TYPE", type: "hidden" as const, values: [form.formType] }, ...form.fields]
    : form.fields;
  return xml(
    "x",
    { xmlns: NS.DATA_FORMS, type: form.type },
    form.title ? xml("title", {}, form.title) : null,
    form.instructions ? xml("instructions", {}, form.instructions) : null,
    ...fields.map((f) =>
      xml(
        "field",
        { var: f.var, type: f.type, label: f.label },
        f.required ? xml("required") : null,
        ...f.values.map((v) => xml("value", {}, v)),
        ...(f.options ?? []).map((o) => xml("option", { label: o.label }, xml("value", {}, o.value))),
      ),
    ),
  );
}

/** Parses a jabber:x:data element; null when it is not one. */
export function parseForm(el: Element | undefined): DataForm | null {
  if (!el || !el.is("x", NS.DATA_FORMS)) return null;
  const type = el.attrs.type;
  if (type !== "form" && type !== "submit" && type !== "cancel" && type !== "result") return null;
  const fields: FormField[] = el.getChildren("field").map((f) => ({
    var: f.attrs.var ?? "",
    type: f.attrs.type as FieldType | undefined,
    label: f.attrs.label,
    values: f.getChildren("value").map((v) => v.getText()),
  }));
  const formType = fields.find((f) => f.var === "FORM_TYPE")?.values[0];
  return { type, formType, fields: fields.filter((f) => f.var !== "FORM_TYPE") };
}

/** Field values by var, for reading a submitted form. */
export function formValues(form: DataForm): Map<string, string[]> {
  return new Map(form.fields.map((f) => [f.var, f.values]));
}

/** XEP-0004 §3.3 booleans: "1"/"true" and "0"/"false"; anything else is not a boolean. */
export function parseFormBoolean(value: string | undefined): boolean | undefined {
  if (value === "1" || value === "true") return true;
  if (value === "0" || value === "false") return false;
  return undefined;
}
