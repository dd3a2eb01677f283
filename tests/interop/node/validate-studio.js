// Validates Dashboard Studio definitions against the schema Splunk's own packages build, the way
// the Studio editor does: @splunk/dashboard-definition's createSchemaBasedOnDicts with the option
// schemas of the real inputs (@splunk/dashboard-inputs), data sources (@splunk/datasources) and
// visualizations (@splunk/visualization-schemas), checked with Ajv (the validator the schema is
// written for: it uses Ajv's `nullable`).
// With "tokens", every data source query is also resolved the way Studio resolves it before a
// search runs (replaceTokens of @splunk/dashboard-utils, with its token filters such as |s).
// Input (stdin, JSON): {"definitions": {"<name>": <definition object>, ...},
//                       "tokens": {"<token>": "<value>", ...}}            (tokens optional)
// Output (stdout, JSON): {"packages": {name: version}, "types": {...},
//                         "results": {"<name>": {"count": n, "errors": [{path, message, params}],
//                                                "queries": {"<data source id>": "<resolved query>"}}}}
"use strict";

// The input and data-source packages pull in React components that need a DOM, and the search
// editor among them expects the Ace editor on `window` (the browser loads it as a global).
require("global-jsdom/register");
window.ace = require("ace-builds/src-min-noconflict/ace");

const Ajv = require("ajv");
const { replaceTokens } = require("@splunk/dashboard-utils");
const { createComponentDict, createSchemaBasedOnDicts } = require("@splunk/dashboard-definition");
const inputs = require("@splunk/dashboard-inputs");
const datasources = require("@splunk/datasources");
const vizSchemas = require("@splunk/visualization-schemas");

// Type names as the Enterprise preset registers them (Dashboard Studio definition reference).
const INPUTS = {
  "input.dropdown": inputs.DropdownInput,
  "input.multiselect": inputs.MultiselectInput,
  "input.timerange": inputs.TimeRangeInput,
  "input.text": inputs.TextInput,
  "input.number": inputs.NumberInput,
};
const DATA_SOURCES = {
  "ds.search": datasources.SplunkSearch,
  // A chain search is a Splunk search that extends another one (options.extend).
  "ds.chain": datasources.SplunkSearch,
  "ds.savedSearch": datasources.SplunkSavedSearch,
  "ds.test": datasources.TestDataSource,
};
// `<name>OptionsSchema` exports -> `splunk.<name lower-cased>` (splunk.singlevalue, splunk.bar, ...).
const VIZ_NAMES = { choroplethSvg: "splunk.choropleth.svg" };
const VISUALIZATIONS = {};
for (const [key, schema] of Object.entries(vizSchemas)) {
  const match = /^(.*)OptionsSchema$/.exec(key);
  if (match && schema && typeof schema === "object") {
    VISUALIZATIONS[VIZ_NAMES[match[1]] || `splunk.${match[1].toLowerCase()}`] = { config: { optionsSchema: schema } };
  }
}

function version(name) {
  return require(`${name}/package.json`).version;
}

let text = "";
process.stdin.on("data", (chunk) => { text += chunk; });
process.stdin.on("end", () => {
  const job = JSON.parse(text);
  const schema = createSchemaBasedOnDicts({
    inputDict: createComponentDict(INPUTS),
    dataSourceDict: createComponentDict(DATA_SOURCES),
    visualizationDict: createComponentDict(VISUALIZATIONS),
  });
  // strict: false because Splunk's schemas carry their own annotation keywords (skipTokenSupport, ...).
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  const results = {};
  for (const [name, definition] of Object.entries(job.definitions)) {
    const ok = validate(definition);
    const errors = ok ? [] : validate.errors.map((e) => ({
      path: e.instancePath, keyword: e.keyword, message: e.message, params: e.params,
    }));
    results[name] = { count: errors.length, errors };
    if (job.tokens) {
      results[name].queries = {};
      for (const [id, source] of Object.entries(definition.dataSources || {})) {
        const query = (source.options || {}).query || "";
        results[name].queries[id] = replaceTokens({ value: query, tokens: { default: job.tokens } });
      }
    }
  }
  const packages = {};
  for (const name of ["@splunk/dashboard-definition", "@splunk/dashboard-inputs", "@splunk/datasources",
    "@splunk/visualization-schemas", "@splunk/dashboard-utils", "ajv"]) {
    packages[name] = version(name);
  }
  const types = {
    inputs: Object.keys(INPUTS), dataSources: Object.keys(DATA_SOURCES),
    visualizations: Object.keys(VISUALIZATIONS).sort(),
  };
  process.stdout.write(JSON.stringify({ packages, types, results }));
});
