// Entry point OpenVINO looks for in an extension library (core.add_extension(path),
// benchmark_app -extensions PATH). ov::OpExtension registers the op for the IR reader and the
// CPU plugin, which runs it as a reference node calling SparseFullyConnected::evaluate.
#include "openvino/core/extension.hpp"
#include "openvino/core/op_extension.hpp"
#include "sparse_fc.hpp"

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<pofa::SparseFullyConnected>>(),
}));
