// What the attention kernels can take, in a module of its own (no GPU code), so that a model's config is
// refused by it when read (model/config.ts) rather than at the first attention call.

/** The most channels a head may have (the kernels keep a query row and its output in registers). */
export const MAX_HEAD_DIM = 256;
