// The bottom floor: the vocabulary (types, names and how to print them, quantities, errors) every
// other folder uses.
// It imports nothing of the project.
export * from './types';
export * from './names';
export * from './quantity';
export * from './object';
export * from './errors';
export * from './paths';
export { printable, printableJson, quotedName } from './printable';
