// The Porter stemmer as NLTK implements it in its default mode (NLTK_EXTENSIONS), which is what
// rouge-score applies when use_stemmer=True. Input is expected lowercase ASCII (rouge-score only
// stems its [a-z0-9]+ tokens).
#pragma once
#include <string>
#include <string_view>

namespace lloco::eval {

std::string porter_stem(std::string_view word);

}  // namespace lloco::eval
