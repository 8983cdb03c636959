"""Using a model: the translator (sentences in, translations out) over two engines, nmtpipe's
own greedy and beam search (each one `tf.while_loop` graph) and CTranslate2."""
