// WGSL kernel sources are bundled as plain strings (esbuild `text` loader; a small plugin in vitest.config.ts).
declare module '*.wgsl' {
  const source: string;
  export default source;
}

// wgsl-preprocessor ships no type declarations.
declare module 'wgsl-preprocessor/wgsl-preprocessor.js' {
  export function wgsl(strings: TemplateStringsArray, ...values: unknown[]): string;
}
