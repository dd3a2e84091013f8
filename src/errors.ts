/**
 * One error class per kind of failure a user can act on. The CLI prints `message` (which says what,
 * where and what to do) and exits with a non-zero status; it never prints a stack for these.
 * @module
 */

/** Base class: every error owlgpu raises on purpose derives from it. */
export class OwlError extends Error {
  /**
   * Create the error; `name` becomes the concrete class's name, and `options.cause` keeps the underlying
   * error.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No WebGPU adapter, or the adapter lacks something we need. */
export class GpuUnavailableError extends OwlError {}

/** A checkpoint, safetensors file, tokenizer or sparse file is corrupt, truncated or inconsistent. */
export class ModelFormatError extends OwlError {}

/** Well-formed input that owlgpu does not support (an architecture, a dtype, a shape). */
export class UnsupportedError extends OwlError {}

/** A flag or option value out of range, or options that contradict each other. */
export class ArgumentError extends OwlError {}

/** A corpus that is missing or too short for the requested windows. */
export class CorpusError extends OwlError {}

/** An output that cannot be written. */
export class OutputError extends OwlError {}
