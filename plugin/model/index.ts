// The bottom floor: the vocabulary (types, names, quantities, errors) every other folder uses.
// It imports nothing of the project.
export * from './types';
export * from './names';
export * from './quantity';
export * from './object';
export * from './errors';
export * from './paths';
