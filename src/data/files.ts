/**
 * The distributed files of MNIST and Fashion-MNIST: their names, and the size and SHA-256 of each genuine `.gz`
 * file (the bytes whose MD5s torchvision checks, so the public mirrors serve exactly these). Browser-safe data only.
 */

export type DatasetName = 'mnist' | 'fashion-mnist';
export type Split = 'train' | 'test';

export const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist'];
export const SPLITS: readonly Split[] = ['train', 'test'];

/** File names (without `.gz`) of each split, as distributed by LeCun et al. and Zalando. */
export const SPLIT_FILES: Readonly<Record<Split, { images: string; labels: string }>> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

export const DISPLAY_NAMES: Readonly<Record<DatasetName, string>> = {
  mnist: 'MNIST',
  'fashion-mnist': 'Fashion-MNIST',
};

/** One genuine distributed file: its name (with `.gz`), size in bytes and SHA-256 (lower-case hex). */
export interface KnownFile {
  readonly name: string;
  readonly bytes: number;
  readonly sha256: string;
}

/** The four files of each dataset, in the order of `expectedFileNames()`. */
export const KNOWN_FILES: Readonly<Record<DatasetName, readonly KnownFile[]>> = {
  mnist: [
    {
      name: 'train-images-idx3-ubyte.gz',
      bytes: 9912422,
      sha256: '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
    },
    {
      name: 'train-labels-idx1-ubyte.gz',
      bytes: 28881,
      sha256: '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
    },
    {
      name: 't10k-images-idx3-ubyte.gz',
      bytes: 1648877,
      sha256: '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
    },
    {
      name: 't10k-labels-idx1-ubyte.gz',
      bytes: 4542,
      sha256: 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
    },
  ],
  'fashion-mnist': [
    {
      name: 'train-images-idx3-ubyte.gz',
      bytes: 26421880,
      sha256: '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
    },
    {
      name: 'train-labels-idx1-ubyte.gz',
      bytes: 29515,
      sha256: 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
    },
    {
      name: 't10k-images-idx3-ubyte.gz',
      bytes: 4422102,
      sha256: '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
    },
    {
      name: 't10k-labels-idx1-ubyte.gz',
      bytes: 5148,
      sha256: '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
    },
  ],
};

/** The four file names a dataset directory must hold (compressed). */
export function expectedFileNames(): string[] {
  return [SPLIT_FILES.train.images, SPLIT_FILES.train.labels, SPLIT_FILES.test.images, SPLIT_FILES.test.labels].map(
    (f) => `${f}.gz`,
  );
}
