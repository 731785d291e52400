/**
 * What WPC knows of the adapter behind a device (vendor, whether it is a CPU implementation, its subgroup size
 * and subgroup-matrix configurations), summarised once when a runtime is made; kernels pick their variants from
 * it. Also the names of the experimental feature behind the subgroup-matrix tiles and of the Dawn option that
 * shows it.
 */

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (lavapipe, SwiftShader, WARP): kernels pick CPU-friendly variants. */
  isSoftware: boolean;
  /**
   * The subgroup size when the device has the `subgroups` feature and the adapter reports one fixed size
   * (subgroupMinSize = subgroupMaxSize), else null. Subgroup kernel variants need it.
   */
  subgroupSize: number | null;
  /**
   * The subgroup-matrix configurations (`adapterInfo.subgroupMatrixConfigs`) when the device has the
   * `chromium-experimental-subgroup-matrix` feature, else empty. The `matrix` tile layout needs one.
   */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  /** Whether the device has `shader-f16` (the `matrix: 'f16'` layout needs it). */
  shaderF16: boolean;
}

/** One of the adapter's subgroup-matrix configurations: componentType A and B, resultComponentType C = A·B. */
interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

/** The device feature behind the `matrix` tile layout (Dawn's experimental subgroup matrices). */
export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';

/** The `dawnOptions` entry that makes Dawn (Node) show experimental features such as subgroup matrices. */
export const DAWN_EXPERIMENTAL_OPTION = 'enable-dawn-features=allow_unsafe_apis';

/**
 * The summary of an adapter from its info (absent when a caller's device came without it), whether it is a
 * fallback adapter, and the features its device has.
 */
export function summariseAdapter(
  info: GPUAdapterInfo | undefined,
  isFallback: boolean,
  features: GPUSupportedFeatures,
): AdapterSummary {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const description = info?.description ?? '';
  const software =
    isFallback ||
    /software|swiftshader|cpu/i.test(architecture) ||
    /llvmpipe|lavapipe|swiftshader|warp|software/i.test(`${description} ${info?.device ?? ''}`);
  const sizes = info as { subgroupMinSize?: number; subgroupMaxSize?: number } | undefined;
  const subgroupSize =
    features.has('subgroups') &&
    typeof sizes?.subgroupMinSize === 'number' &&
    sizes.subgroupMinSize > 0 &&
    sizes.subgroupMinSize === sizes.subgroupMaxSize
      ? sizes.subgroupMinSize
      : null;
  const configs = (info as { subgroupMatrixConfigs?: Iterable<SubgroupMatrixConfig> } | undefined)
    ?.subgroupMatrixConfigs;
  const subgroupMatrixConfigs =
    features.has(SUBGROUP_MATRIX_FEATURE) && configs
      ? [...configs].map(({ componentType, resultComponentType, M, N, K }) => ({
          componentType,
          resultComponentType,
          M,
          N,
          K,
        }))
      : [];
  return {
    vendor,
    architecture,
    device: info?.device ?? '',
    description,
    isSoftware: software,
    subgroupSize,
    subgroupMatrixConfigs,
    shaderF16: features.has('shader-f16'),
  };
}
