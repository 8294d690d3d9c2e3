// Placeholder: the benchmark helper replaces this file.
console.log('bench not yet written')
