/**
 * The distributed files of MNIST, Fashion-MNIST and CIFAR-10: their names, and the size and SHA-256 of each
 * genuine `.gz` file (the bytes whose MD5s torchvision checks, so the public mirrors serve exactly these); for
 * CIFAR-10, the one archive that holds its six binary files, and those files' names. Browser-safe data only.
 */

export type DatasetName = 'mnist' | 'fashion-mnist' | 'cifar10';
export type Split = 'train' | 'test';

export const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist', 'cifar10'];
export const SPLITS: readonly Split[] = ['train', 'test'];

/** File names (without `.gz`) of each split, as distributed by LeCun et al. and Zalando. */
export const SPLIT_FILES: Readonly<Record<Split, { images: string; labels: string }>> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

/** CIFAR-10's binary files of each split, as its archive holds them (in `cifar-10-batches-bin/`). */
export const CIFAR10_SPLIT_FILES: Readonly<Record<Split, readonly string[]>> = {
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
};

export const DISPLAY_NAMES: Readonly<Record<DatasetName, string>> = {
  mnist: 'MNIST',
  'fashion-mnist': 'Fashion-MNIST',
  cifar10: 'CIFAR-10',
};

/** One genuine distributed file: its name (with `.gz`), size in bytes and SHA-256 (lower-case hex). */
export interface KnownFile {
  readonly name: string;
  readonly bytes: number;
  readonly sha256: string;
  /** The MD5 (lower-case hex) its publisher lists, checked as well where there is one. */
  readonly md5?: string | undefined;
}

/**
 * CIFAR-10's binary archive (https://www.cs.toronto.edu/~kriz/cifar.html, "CIFAR-10 binary version"): the MD5 is
 * the one that page lists; the size and SHA-256 are those other dataset loaders record for it (Julia's
 * MLDatasets, GoMLX), checked as well so that an MD5 collision cannot pass.
 */
const CIFAR10_ARCHIVE: KnownFile = {
  name: 'cifar-10-binary.tar.gz',
  bytes: 170052171,
  sha256: 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd',
  md5: 'c32a1d4ab5d03f1284b67883e8d87530',
};

/** The files `downloadDataset` fetches for each dataset: the four IDX files, or CIFAR-10's archive. */
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
  cifar10: [CIFAR10_ARCHIVE],
};

/**
 * The files a dataset directory must hold: MNIST's and Fashion-MNIST's four IDX files (named compressed; each
 * may also be there decompressed), or CIFAR-10's six binary files.
 */
export function expectedFileNames(name: DatasetName = 'mnist'): string[] {
  if (name === 'cifar10') return [...CIFAR10_SPLIT_FILES.train, ...CIFAR10_SPLIT_FILES.test];
  return [SPLIT_FILES.train.images, SPLIT_FILES.train.labels, SPLIT_FILES.test.images, SPLIT_FILES.test.labels].map(
    (f) => `${f}.gz`,
  );
}
