// Public surface of the declarations folder: where ShareMemory declarations come from.
export { QuantityError, parseQuantityBytes, formatBytes } from '../model/quantity';
export {
  DeclarationError,
  validateShareMemory,
  readGrants,
  SHARE_MEMORY_API_VERSION,
  SHARE_MEMORY_KIND,
  MAX_ALLOWED_NAMESPACES,
} from './sharememory';
export { DeclarationsDirectory, DECLARATION_EXTENSIONS, MAX_DECLARATION_FILES, MAX_DECLARATION_BYTES, type DirectoryOptions } from './directory';
export { parseDeclarationText, DEFAULT_PARSE_BUDGET, type ParseBudget } from './parse';
export {
  MergedDeclarationStore,
  diffDeclarations,
  sameDeclaration,
  type DeclarationChange,
  type DeclarationChangeListener,
  type DeclarationProblem,
  type DeclarationSource,
  type DeclarationStore,
  type RefusedDeclaration,
  type RefusalChangeListener,
  type StoreOptions,
} from './store';
export { MemoryDeclarationSource } from './memory-source';
export {
  KubernetesDeclarationSource,
  SHARE_MEMORY_GROUP,
  SHARE_MEMORY_PLURAL,
  SHARE_MEMORY_LIST_PATH,
  MAX_WATCH_EVENT_BYTES,
  MAX_OBJECT_BYTES,
  MAX_OBJECT_PROBLEMS,
  MAX_REFUSED_GRANTS,
  MAX_REFUSAL_REASON,
  type KubernetesSourceOptions,
  type KubernetesSourceSecurity,
  type SourceLog,
} from './kubernetes';
