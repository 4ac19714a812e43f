// Data given as several files read as one, in the order given: a split's shards (a Hugging Face
// dataset's data/train-00000-of-00003.parquet ...), or subsets side by side (HH-RLHF's helpful-base
// and harmless-base). Rows keep their own file and line for every message.

/** One data file, or several read as one. */
export type DataFiles = string | readonly string[];

export function dataFileList(d: DataFiles): string[] {
  return typeof d === 'string' ? [d] : [...d];
}

/** How messages name the data: the file, or the files (the first and a count past three). */
export function dataLabel(d: DataFiles): string {
  const l = dataFileList(d);
  return l.length <= 3 ? l.join(' + ') : `${l[0]} + ${l.length - 1} more files`;
}
