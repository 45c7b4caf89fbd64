// Public surface of the declarations folder: where ShareMemory declarations come from.
export { QuantityError, parseQuantityBytes, formatBytes } from './quantity';
export {
  DeclarationError,
  validateShareMemory,
  SHARE_MEMORY_API_VERSION,
  SHARE_MEMORY_KIND,
  MAX_ALLOWED_NAMESPACES,
} from './sharememory';
export { DeclarationsDirectory, DECLARATION_EXTENSIONS, type DirectoryOptions } from './directory';
export {
  MergedDeclarationStore,
  diffDeclarations,
  sameDeclaration,
  type DeclarationChange,
  type DeclarationChangeListener,
  type DeclarationProblem,
  type DeclarationSource,
  type DeclarationStore,
  type StoreOptions,
} from './store';
export { MemoryDeclarationSource } from './memory-source';
