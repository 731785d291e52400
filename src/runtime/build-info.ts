/**
 * Facts about this package that the build copies from package.json (esbuild's `define`; vitest's config does the
 * same), so they hold wherever the bundle is installed or copied.
 */
declare const __WPC_VERSION__: string;
declare const __WPC_DAWN_RANGE__: string;

/** This package's version (package.json's `version`). */
export const VERSION: string = __WPC_VERSION__;

/** The versions of `webgpu` (Dawn) this package works with (package.json's `peerDependencies.webgpu`). */
export const DAWN_RANGE: string = __WPC_DAWN_RANGE__;
