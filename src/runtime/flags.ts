/**
 * WebGPU's bit flags as plain numbers (values fixed by the WebGPU spec), so that WPC never needs the
 * `GPUBufferUsage`/`GPUMapMode`/`GPUShaderStage` globals: Dawn in Node only installs them if asked to, and an
 * embedding app's globals are not ours to touch.
 */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  INDIRECT: 0x0100,
  QUERY_RESOLVE: 0x0200,
} as const;

export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;

export const ShaderStage = { COMPUTE: 0x0004 } as const;

/** Usage for every GPU-resident f32 array WPC allocates. */
export const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;
export const UNIFORM_USAGE = BufferUsage.UNIFORM | BufferUsage.COPY_DST;
