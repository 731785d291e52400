/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78: iSCSI, ext4, SCTP, Google Cloud Storage), synchronous
 * and browser-safe. Checkpoints carry it to detect corruption: it catches every error confined to 32 consecutive
 * bits (every single-bit flip, every changed byte), whatever the file's length, and other random damage with
 * probability 1 − 2⁻³². It is not a signature: anyone who changes a file on purpose can recompute it.
 *
 * Slicing-by-8 (eight 256-entry tables, eight bytes per step).
 */

const TABLES = (() => {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + n]!;
      t[k * 256 + n] = (prev >>> 8) ^ t[prev & 255]!;
    }
  }
  return t;
})();

/**
 * The CRC-32C of `bytes`, continuing from `previous` (the CRC of the bytes before them; default 0, the start):
 * `crc32c(b, crc32c(a))` is the CRC of a followed by b. Returns an unsigned 32-bit integer.
 */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  const t = TABLES;
  let c = ~previous >>> 0;
  const n = bytes.length;
  let i = 0;
  for (; n - i >= 8; i += 8) {
    const lo = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    c =
      t[1792 + (lo & 255)]! ^
      t[1536 + ((lo >>> 8) & 255)]! ^
      t[1280 + ((lo >>> 16) & 255)]! ^
      t[1024 + (lo >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]!) & 255]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** `crc32c` as eight lowercase hex digits (how checkpoints store it). */
export function crc32cHex(value: number): string {
  return (value >>> 0).toString(16).padStart(8, '0');
}
